/**
 * Knowledge (issue 20), one run: ingestion throughput (pages/s of a generated PDF through the
 * real ingest job: PDF.js text extraction, chunking, embedding, chunk + vector + keyword-index
 * writes) with a local in-process embedder (deterministic hashed bag of words, DIMS floats:
 * the cost of a real embedding model is not Enclave's and is left out), then hybrid search
 * p50/p99 over 10k and 100k chunks (keyword BM25 + the brute-force cosine scan of every vector
 * + rank fusion + reading the hits), SQLite in a temp data dir.
 *
 *   node --import tsx bench/knowledge.ts [--pages 200] [--queries 100] [--dims 384] [--sizes 10000,100000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PDFDocument, StandardFonts } from 'pdf-lib';
import pino from 'pino';
import type { Config } from '../server/config/settings.js';
import { createContext, type RequestContext } from '../server/context.js';
import { databaseFile, openDatabase } from '../server/db/connection.js';
import { migrate } from '../server/db/migrator.js';
import { IdentityRepo } from '../server/db/repos/identity.js';
import { JobsRepo } from '../server/db/repos/jobs.js';
import { chunkId, KnowledgeRepo, type NewChunk } from '../server/db/repos/knowledge.js';
import { sqliteStore } from '../server/db/store.js';
import { createTenantStore } from '../server/db/tenant-store.js';
import { writeDurable } from '../server/batch/service.js';
import { normalize, toBlob, type Embedder } from '../server/knowledge/embed.js';
import { ingestFile } from '../server/knowledge/ingest.js';
import { hybridSearch, VectorCache } from '../server/knowledge/search.js';

const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
};
const PAGES = Number(arg('pages', '200'));
const QUERIES = Number(arg('queries', '100'));
const DIMS = Number(arg('dims', '384'));
const SIZES = arg('sizes', '10000,100000').split(',').map(Number);

const WORDS = 'budget hiring travel office vault contract policy report risk audit invoice supplier server network backup customer privacy review quarter forecast margin training safety legal tax'.split(' ');

function embedText(s: string): Float32Array {
  const v = new Float32Array(DIMS);
  for (const w of s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) {
    let h = 0x811c9dc5;
    for (let i = 0; i < w.length; i++) h = Math.imul(h ^ w.charCodeAt(i), 0x01000193) >>> 0;
    v[h % DIMS]! += 1;
  }
  return normalize(v);
}
const embedder: Embedder = { embed: async (_ctx, o) => o.texts.map(embedText) };

function sentence(seed: number): string {
  const out: string[] = [];
  let x = seed * 2654435761;
  for (let i = 0; i < 14; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out.push(WORDS[x % WORDS.length]!);
  }
  return `${out.join(' ')}.`;
}

async function pdf(pages: number): Promise<Buffer> {
  const doc = await PDFDocument.create();
  const font = await doc.embedFont(StandardFonts.Helvetica);
  for (let p = 1; p <= pages; p++) {
    const page = doc.addPage();
    page.drawText(`Chapter ${p}`, { x: 50, y: 790, size: 14, font });
    for (let l = 0; l < 40; l++) page.drawText(sentence(p * 100 + l), { x: 40, y: 760 - l * 18, size: 9, font });
  }
  return Buffer.from(await doc.save());
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'enclave-kb-bench-'));
  const log = pino({ level: 'silent' });
  try {
    const db = openDatabase(databaseFile(dir));
    migrate(db.$client);
    const store = sqliteStore(db);
    const data = createTenantStore(store);
    const clock = { now: () => Date.now() };
    await store.run(store.q.insert(store.t.tenants).values({ id: 'ten_bench', slug: 'bench', name: 'Bench', createdAt: 0, updatedAt: 0 }));
    const ctx: RequestContext = createContext({ requestId: 'bench', log, clock, tenant: { id: 'ten_bench', slug: 'bench' }, principal: { kind: 'system', id: 'bench' } });
    const repo = new KnowledgeRepo(store, data);
    const files = new JobsRepo(store, data);
    // The ingest job reads only the data dir from the config.
    const config = { dataDir: dir } as Config;
    const deps = { config, repo, files, identity: { keys: undefined as never }, identityRepo: new IdentityRepo(store, data), embedder, clock };

    // ---- ingestion ----
    const bytes = await pdf(PAGES);
    const addFile = async (vs: string, id: string, name: string, content: Buffer) => {
      const rel = path.join('files', 'ten_bench', `${id}.pdf`);
      writeDurable(path.join(dir, rel), content);
      await files.insertFile(ctx, { id, purpose: 'assistants', filename: name, bytes: content.length, lineCount: 0, path: rel, keyId: null, createdAt: Date.now(), expiresAt: null });
      await repo.insertStoreFile(ctx, { vectorStoreId: vs, fileId: id, status: 'in_progress', classification: 'internal', contentType: 'application/pdf', createdAt: Date.now(), updatedAt: Date.now() });
    };
    const newStore = (id: string) => repo.insertStore(ctx, { id, name: id, sharing: 'tenant', classification: 'internal', embeddingModel: 'local', createdAt: Date.now() });
    await newStore('vs_ingest');
    // Warm-up (loads PDF.js once), then the measured run.
    await addFile('vs_ingest', 'file_warm', 'warm.pdf', await pdf(2));
    await ingestFile(deps, { vectorStoreId: 'vs_ingest', fileId: 'file_warm', log });
    await addFile('vs_ingest', 'file_big', 'big.pdf', bytes);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const r = await ingestFile(deps, { vectorStoreId: 'vs_ingest', fileId: 'file_big', log });
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    console.log(`ingestion: ${PAGES} pages (${(bytes.length / 1024).toFixed(0)} KiB PDF) → ${r.chunks} chunks, ${ms.toFixed(0)} ms: ${((PAGES / ms) * 1000).toFixed(1)} pages/s, CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms (status ${r.status})`);

    // ---- search ----
    for (const n of SIZES) {
      const vs = `vs_search_${n}`;
      await newStore(vs);
      const fileId = `file_syn_${n}`;
      await addFile(vs, fileId, 'synthetic.pdf', Buffer.from('%PDF-1.4'));
      const t1 = performance.now();
      for (let i = 0; i < n; i += 1000) {
        const rows: NewChunk[] = [];
        for (let j = i; j < Math.min(n, i + 1000); j++) {
          const text = `${sentence(j)} ${sentence(j + 7)} ${sentence(j + 13)} item${j}`;
          rows.push({ id: chunkId(vs, fileId, j), vectorStoreId: vs, fileId, chunkIndex: j, page: 1 + (j >> 3), text, embedding: toBlob(embedText(text)), createdAt: 0 });
        }
        await store.tx(() => repo.insertChunks(ctx, rows));
      }
      await repo.updateStoreFile(ctx, vs, fileId, { status: 'completed', chunkCount: n, updatedAt: Date.now() });
      const loadMs = performance.now() - t1;
      const storeRow = (await repo.vectorStore(ctx, vs))!;
      const times: number[] = [];
      // As the service runs it: the first query reads the vectors, the others scan the cached ones.
      const cache = new VectorCache();
      let found = 0;
      for (let q = 0; q < QUERIES + 5; q++) {
        const j = (q * 7919) % n;
        const query = `${sentence(j).split(' ').slice(0, 4).join(' ')} item${j}`;
        const t = performance.now();
        const hits = await hybridSearch({ repo, embedder, vectors: cache }, ctx, { stores: [storeRow], query, limit: 10, classification: 'internal' });
        const dt = performance.now() - t;
        if (q >= 5) times.push(dt); // the first few warm up
        if (hits.some((h) => h.hit.chunkIndex === j)) found++;
      }
      console.log(
        `search over ${n} chunks (${DIMS} dims; loaded in ${(loadMs / 1000).toFixed(1)} s): p50 ${pct(times, 50).toFixed(1)} ms, p99 ${pct(times, 99).toFixed(1)} ms over ${QUERIES} queries; exact item found in the top 10: ${found}/${QUERIES + 5}`,
      );
    }
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
