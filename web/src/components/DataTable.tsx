import { useMemo, useState, type ReactNode } from 'react';

/**
 * The console's one table: a caption for screen readers, optional search over the rows,
 * sortable columns (a button in each sortable header, aria-sort on it), pagination and an
 * empty state that says whether there is nothing yet or nothing matches. Rows are filtered
 * and sorted in the browser: the console's lists are one page of the API (≤ 200 rows).
 */
export interface Column<T> {
  /** Unique within the table. */
  key: string;
  header: ReactNode;
  cell: (row: T) => ReactNode;
  /** Makes the column sortable. */
  sort?: (row: T) => string | number | null | undefined;
  /** Right-aligned numbers. */
  num?: boolean;
  className?: string;
}

const cmp = (a: string | number | null | undefined, b: string | number | null | undefined): number => {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  return typeof a === 'number' && typeof b === 'number' ? a - b : String(a).localeCompare(String(b), undefined, { numeric: true, sensitivity: 'base' });
};

export function DataTable<T>(props: {
  caption: string;
  rows: readonly T[];
  columns: Column<T>[];
  rowKey: (row: T) => string;
  /** The text a row is searched by; no search box without it. */
  search?: (row: T) => string;
  /** Shown when there are no rows at all. */
  empty: ReactNode;
  /** A trailing cell of buttons per row (header "Actions" for screen readers). */
  actions?: (row: T) => ReactNode;
  initialSort?: { key: string; desc?: boolean };
  pageSize?: number;
  rowClassName?: (row: T) => string | undefined;
  testId?: string;
  dense?: boolean;
}) {
  const { columns, rows, pageSize = 25 } = props;
  const [query, setQuery] = useState('');
  const [sort, setSort] = useState<{ key: string; desc: boolean } | null>(props.initialSort ? { key: props.initialSort.key, desc: !!props.initialSort.desc } : null);
  const [page, setPage] = useState(0);
  const shown = useMemo(() => {
    const q = query.trim().toLowerCase();
    const found = q && props.search ? rows.filter((r) => props.search!(r).toLowerCase().includes(q)) : [...rows];
    const col = sort ? columns.find((c) => c.key === sort.key) : undefined;
    if (col?.sort) found.sort((a, b) => cmp(col.sort!(a), col.sort!(b)) * (sort!.desc ? -1 : 1));
    return found;
  }, [rows, query, sort, columns, props.search]);
  const pages = Math.max(1, Math.ceil(shown.length / pageSize));
  const at = Math.min(page, pages - 1);
  const slice = shown.slice(at * pageSize, (at + 1) * pageSize);
  const searchId = `search-${props.caption.replace(/\W+/g, '-').toLowerCase()}`;

  if (!rows.length) return <p className="empty-state">{props.empty}</p>;
  return (
    <div className="data-table">
      {props.search ? (
        <div className="table-tools">
          <label htmlFor={searchId} className="sr-only">
            Search {props.caption.toLowerCase()}
          </label>
          <input
            id={searchId}
            type="search"
            placeholder={`Search ${props.caption.toLowerCase()}`}
            value={query}
            onChange={(e) => {
              setQuery(e.target.value);
              setPage(0);
            }}
          />
          <span className="muted small" role="status">
            {query.trim() ? `${shown.length} of ${rows.length}` : `${rows.length}`} {rows.length === 1 ? 'row' : 'rows'}
          </span>
        </div>
      ) : null}
      {shown.length === 0 ? (
        <p className="empty-state">Nothing matches “{query.trim()}”.</p>
      ) : (
        <div className="table-wrap" tabIndex={0} role="region" aria-label={props.caption}>
          <table className={`table${props.dense ? ' table-dense' : ''}`} {...(props.testId ? { 'data-testid': props.testId } : {})}>
            <caption className="sr-only">{props.caption}</caption>
            <thead>
              <tr>
                {columns.map((c) => {
                  const sorted = sort?.key === c.key;
                  return (
                    <th key={c.key} scope="col" className={c.num ? 'num' : undefined} {...(c.sort ? { 'aria-sort': sorted ? (sort!.desc ? 'descending' : 'ascending') : 'none' } : {})}>
                      {c.sort ? (
                        <button type="button" className="sort" onClick={() => setSort({ key: c.key, desc: sorted ? !sort!.desc : false })}>
                          {c.header}
                          <span aria-hidden="true">{sorted ? (sort!.desc ? ' ▼' : ' ▲') : ''}</span>
                        </button>
                      ) : (
                        c.header
                      )}
                    </th>
                  );
                })}
                {props.actions ? (
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                ) : null}
              </tr>
            </thead>
            <tbody>
              {slice.map((r) => (
                <tr key={props.rowKey(r)} className={props.rowClassName?.(r)}>
                  {columns.map((c) => (
                    <td key={c.key} className={[c.num ? 'num' : '', c.className ?? ''].join(' ').trim() || undefined}>
                      {c.cell(r)}
                    </td>
                  ))}
                  {props.actions ? <td className="actions">{props.actions(r)}</td> : null}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {pages > 1 ? (
        <nav className="pager" aria-label={`Pages of ${props.caption.toLowerCase()}`}>
          <button type="button" className="btn btn-small" disabled={at === 0} onClick={() => setPage(at - 1)}>
            Previous page
          </button>
          <span className="small">
            {at * pageSize + 1}–{Math.min(shown.length, (at + 1) * pageSize)} of {shown.length}
          </span>
          <button type="button" className="btn btn-small" disabled={at >= pages - 1} onClick={() => setPage(at + 1)}>
            Next page
          </button>
        </nav>
      ) : null}
    </div>
  );
}
