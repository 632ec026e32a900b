// Boots a mock upstream and a gateway in front of it for one test file, like
// tests/python/harness.py (whose config starts like this one: keep them alike). Both
// listen on 127.0.0.1:0 and their addresses are read from their log lines. Nothing here
// touches the internet.

import { spawn, execFileSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import OpenAI from 'openai';

import { checkingFetch } from './conformance.mjs';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const START_TIMEOUT_MS = 30_000;
const MOCK_RE = /mock upstream listening on (http:\/\/127\.0\.0\.1:(\d+)\/v1)/;
const GATEWAY_RE = /tokenrouter listening on (http:\/\/127\.0\.0\.1:(\d+))/;
const ANSI_RE = /\x1b\[[0-9;]*[A-Za-z]/g;
const SCRUB_ENV = [
  'TOKENROUTER_DATABASE_URL', 'TOKENROUTER_CONFIG', 'TOKENROUTER_LISTEN',
  'OPENAI_API_KEY', 'OPENAI_BASE_URL', 'ANTHROPIC_API_KEY', 'ANTHROPIC_BASE_URL',
  'GEMINI_API_KEY', 'DEEPSEEK_API_KEY', 'MISTRAL_API_KEY',
];

/** Chat models of each provider kind, as the Python suite names them. */
export const PROVIDERS = { openai: 'gpt-4o-mini', anthropic: 'claude-sonnet-4-5', gemini: 'gemini-2.5-pro' };

function binary() {
  const path = process.env.TOKENROUTER_BIN || join(REPO_ROOT, 'target', 'debug', 'tokenrouter');
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`tokenrouter binary not found at ${path}; run \`cargo build -p tokenrouter\` or set TOKENROUTER_BIN`);
  }
  return path;
}

function childEnv() {
  const env = { ...process.env, NO_COLOR: '1' };
  for (const k of SCRUB_ENV) delete env[k];
  return env;
}

function config(mockUrl) {
  const geminiUrl = mockUrl.replace(/\/v1$/, '') + '/v1beta';
  return `
[[providers]]
name = "mock"
kind = "openai"
base_url = "${mockUrl}"

[[providers]]
name = "mock-anthropic"
kind = "anthropic"
base_url = "${mockUrl}"
api_key = "mock-anthropic-key"

[[providers]]
name = "mock-gemini"
kind = "gemini"
base_url = "${geminiUrl}"
api_key = "mock-gemini-key"

[[models]]
id = "gpt-4o-mini"
deployments = [ { provider = "mock", upstream_model = "mock-gpt" } ]

[[models]]
id = "claude-sonnet-4-5"
deployments = [ { provider = "mock-anthropic", upstream_model = "claude-mock" } ]

[[models]]
id = "gemini-2.5-pro"
deployments = [ { provider = "mock-gemini", upstream_model = "gemini-mock" } ]

[[models]]
id = "text-embedding-3-small"
deployments = [ { provider = "mock", upstream_model = "mock-embedding" } ]

[[models]]
id = "gemini-embedding-001"
deployments = [ { provider = "mock-gemini", upstream_model = "gemini-embedding-001" } ]
`;
}

/** A child process whose output is kept in memory and scanned for its listen line. */
class Proc {
  constructor(name, argv, cwd) {
    this.name = name;
    this.log = '';
    this.exit = null;
    this.child = spawn(argv[0], argv.slice(1), { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk) => { this.log += chunk.toString('utf8').replace(ANSI_RE, ''); };
    this.child.stdout.on('data', keep);
    this.child.stderr.on('data', keep);
    this.child.on('exit', (code, signal) => { this.exit = { code, signal }; });
  }

  async waitFor(re) {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      const m = re.exec(this.log);
      if (m) return m;
      if (this.exit) throw new Error(`${this.name} exited (${JSON.stringify(this.exit)}) before it was ready; log:\n${this.log.slice(-4000)}`);
      if (Date.now() > deadline) throw new Error(`${this.name} did not log a listen address in time; log:\n${this.log.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop() {
    if (this.exit) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** Starts a mock and a gateway with an account and a key. Call `.stop()` when done. */
export async function startGateway() {
  const bin = binary();
  const workdir = mkdtempSync(join(tmpdir(), 'tokenrouter-node-'));
  const procs = [];
  const gw = {
    workdir,
    procs,
    async stop() {
      for (const p of [...procs].reverse()) await p.stop();
      if (process.env.TOKENROUTER_KEEP_TMP !== '1') rmSync(workdir, { recursive: true, force: true });
    },
  };
  try {
    const mock = new Proc('mock-upstream', [bin, 'mock-upstream', '--listen', '127.0.0.1:0'], workdir);
    procs.push(mock);
    gw.mockUrl = (await mock.waitFor(MOCK_RE))[1];

    const dbUrl = `sqlite://${join(workdir, 'tokenrouter.db')}`;
    const configPath = join(workdir, 'tokenrouter.toml');
    writeFileSync(configPath, config(gw.mockUrl));
    const cli = (...args) => execFileSync(bin, ['--database', dbUrl, '--config', configPath, ...args], {
      cwd: workdir, env: childEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000,
    });
    cli('accounts', 'create', 'node', '--balance', '100');
    const lines = cli('keys', 'create', '--account', 'node').trim().split('\n');
    gw.key = lines[lines.length - 1].trim();
    if (!gw.key.startsWith('sk-tr-')) throw new Error(`unexpected key line ${gw.key}`);

    const server = new Proc('gateway', [bin, '--database', dbUrl, '--config', configPath, 'serve', '--listen', '127.0.0.1:0'], workdir);
    procs.push(server);
    gw.rootUrl = (await server.waitFor(GATEWAY_RE))[1];
    gw.baseUrl = `${gw.rootUrl}/v1`;
    // Every answer is checked against tests/schemas (conformance.mjs).
    const fetch = checkingFetch(gw.rootUrl);
    gw.client = (opts = {}) => new OpenAI({ baseURL: gw.baseUrl, apiKey: gw.key, maxRetries: 0, timeout: 30_000, fetch, ...opts });
    gw.log = () => server.log;
    return gw;
  } catch (e) {
    await gw.stop();
    throw e;
  }
}

// ---- docs/compatibility.md: this suite's section (the format of tests/python/harness.py). ----

const COMPAT_DOC = join(REPO_ROOT, 'docs', 'compatibility.md');
const SECTIONS = ['python', 'node', 'codex'];

/** Markdown lines of a feature × provider table; cells[`${row}|${column}`] is the outcome. */
export function table(columns, rows, cells) {
  const lines = [`| feature | ${columns.join(' | ')} |`, `|---|${'---|'.repeat(columns.length)}`];
  for (const row of rows) lines.push(`| ${row} | ${columns.map((c) => cells[`${row}|${c}`] ?? 'not run').join(' | ')} |`);
  return lines;
}

/** Replaces section `name` of docs/compatibility.md, keeping the others and the header. */
export function writeCompatSection(name, body) {
  if (!existsSync(COMPAT_DOC)) return; // the Python suite writes the header; without it, nothing to join
  const text = readFileSync(COMPAT_DOC, 'utf8');
  const first = text.indexOf('<!-- section:');
  const header = first >= 0 ? text.slice(0, first) : text.replace(/\n*$/, '\n\n');
  const sections = {};
  for (const s of SECTIONS) {
    const m = new RegExp(`<!-- section:${s} -->\\n([\\s\\S]*?)<!-- /section:${s} -->\\n`).exec(text);
    if (m) sections[s] = m[1];
  }
  sections[name] = body.replace(/\n*$/, '\n');
  const parts = SECTIONS.filter((s) => s in sections).map((s) => `<!-- section:${s} -->\n${sections[s]}<!-- /section:${s} -->\n`);
  mkdirSync(dirname(COMPAT_DOC), { recursive: true });
  writeFileSync(COMPAT_DOC, header + parts.join('\n'));
}
