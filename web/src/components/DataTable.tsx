import { useMemo, useState, type ReactNode } from 'react';

/**
 * The console's one table: a caption for screen readers, optional search over the rows,
 * sortable columns (a button in each sortable header, aria-sort on it), pagination and an
 * empty state that says whether there is nothing yet or nothing matches. Rows are filtered
 * and sorted in the browser: the console's lists are one page of the API (≤ 200 rows).
 * A list the API pages itself (the audit log) passes `server`: the rows are then the page the
 * API sent, shown as they are; the pager and the sort buttons ask the caller for another page.
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

/** Paging (and optionally sorting) done by the API: sorting one page in the browser would lie. */
export interface ServerPaging {
  /** Where this page starts in the whole result (0-based), for "51–100". */
  offset: number;
  /** The size of the whole result, when the API tells it. */
  total?: number;
  /** Whether there is a page after this one (the API's cursor). */
  hasMore: boolean;
  onPage: (to: 'next' | 'previous') => void;
  /** The order the API applied; columns with `sort` become buttons only with onSort. */
  sort?: { key: string; desc: boolean };
  onSort?: (sort: { key: string; desc: boolean }) => void;
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
  /** Show the caption above the table (default: for screen readers only). */
  showCaption?: boolean;
  /** The API pages (and sorts) this list; no search box, nothing reordered here. */
  server?: ServerPaging;
}) {
  const { columns, rows, server } = props;
  const pageSize = server ? Math.max(1, rows.length) : (props.pageSize ?? 25);
  const [query, setQuery] = useState('');
  const [localSort, setLocalSort] = useState<{ key: string; desc: boolean } | null>(props.initialSort ? { key: props.initialSort.key, desc: !!props.initialSort.desc } : null);
  const sort = server ? (server.sort ?? null) : localSort;
  const setSort = server ? (s: { key: string; desc: boolean }) => server.onSort?.(s) : setLocalSort;
  const sortable = (c: Column<T>) => !!c.sort && (!server || !!server.onSort);
  const [page, setPage] = useState(0);
  const shown = useMemo(() => {
    if (server) return rows;
    const q = query.trim().toLowerCase();
    const found = q && props.search ? rows.filter((r) => props.search!(r).toLowerCase().includes(q)) : [...rows];
    const col = sort ? columns.find((c) => c.key === sort.key) : undefined;
    if (col?.sort) found.sort((a, b) => cmp(col.sort!(a), col.sort!(b)) * (sort!.desc ? -1 : 1));
    return found;
  }, [server, rows, query, sort, columns, props.search]);
  const pages = Math.max(1, Math.ceil(shown.length / pageSize));
  const at = Math.min(page, pages - 1);
  const slice = server ? rows : shown.slice(at * pageSize, (at + 1) * pageSize);
  // What the pager says and does, for either kind of paging.
  const pager = server
    ? {
        show: server.offset > 0 || server.hasMore,
        first: server.offset + 1,
        last: server.offset + rows.length,
        of: server.total,
        prev: server.offset > 0,
        next: server.hasMore,
        go: (to: 'next' | 'previous') => server.onPage(to),
      }
    : {
        show: pages > 1,
        first: at * pageSize + 1,
        last: Math.min(shown.length, (at + 1) * pageSize),
        of: shown.length as number | undefined,
        prev: at > 0,
        next: at < pages - 1,
        go: (to: 'next' | 'previous') => setPage(to === 'next' ? at + 1 : at - 1),
      };
  const searchId = `search-${props.caption.replace(/\W+/g, '-').toLowerCase()}`;

  if (!rows.length && !(server && server.offset > 0)) return <p className="empty-state">{props.empty}</p>;
  return (
    <div className="data-table">
      {props.search && !server ? (
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
        <p className="empty-state">{server ? props.empty : `Nothing matches “${query.trim()}”.`}</p>
      ) : (
        <div className="table-wrap" tabIndex={0} role="region" aria-label={props.caption}>
          <table className={`table${props.dense ? ' table-dense' : ''}`} {...(props.testId ? { 'data-testid': props.testId } : {})}>
            <caption className={props.showCaption ? undefined : 'sr-only'}>{props.caption}</caption>
            <thead>
              <tr>
                {columns.map((c) => {
                  const sorted = sort?.key === c.key;
                  return (
                    <th key={c.key} scope="col" className={c.num ? 'num' : undefined} {...(sortable(c) ? { 'aria-sort': sorted ? (sort!.desc ? 'descending' : 'ascending') : 'none' } : {})}>
                      {sortable(c) ? (
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
      {pager.show ? (
        <nav className="pager" aria-label={`Pages of ${props.caption.toLowerCase()}`}>
          <button type="button" className="btn btn-small" disabled={!pager.prev} onClick={() => pager.go('previous')}>
            Previous page
          </button>
          <span className="small">
            {pager.first}–{pager.last}
            {pager.of !== undefined ? ` of ${pager.of}` : ''}
          </span>
          <button type="button" className="btn btn-small" disabled={!pager.next} onClick={() => pager.go('next')}>
            Next page
          </button>
        </nav>
      ) : null}
    </div>
  );
}
