// Every code block of the README and the Laravel guides (docs/laravel.md, docs/migrating.md,
// docs/pt-BR/*.md, clients/pusher-js-recovery/README.md) is checked, so a snippet that stops working fails the build.
//
// By the block's language:
//   dotenv  parsed; variable names must be Laravel's or Herald's (HERALD_* are
//           checked against `herald serve --help` and the app keys, and loaded
//           with `herald config check --env`); ${VAR} must be defined above
//           in the block; a local PUSHER_/REVERB_ port must be Herald's port.
//   yaml    `herald config check` must accept it.
//   js      `node --check` as an ES module.
//   php     `php -l` (php-cli is installed by `make e2e-laravel`).
//   sh      `bash -n`.
//   json    JSON.parse.
// An HTML comment on the line before the fence changes that:
//   <!-- snippet: skip (why) -->        not checked (say why)
//   <!-- snippet: run-echo -->          js: also run against a real Herald with
//                                       the VITE_* values of the doc's .env block;
//                                       an event published with the block's app
//                                       id/key/secret must reach it
//   <!-- snippet: run -->               sh: run (herald on PATH) in a directory
//                                       holding the doc's previous yaml block as herald.yaml
//   <!-- snippet: yaml-fails KEY... --> yaml: every problem must name one of KEYs
//   <!-- snippet: soketi-import -->     json: `herald config import soketi` of it
//                                       must print the doc's next yaml block
//   <!-- snippet: php-array -->         php: array elements, wrapped in [ ]
//   <!-- snippet: php-class -->         php: class members (use lines hoisted)
//   <!-- snippet: php-statements -->    php: statements without <?php
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, it, after } from 'node:test';

import { HeraldServer, PusherServer, waitUntil, withTimeout } from '../harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const e2eDir = path.resolve(here, '..');
const repo = path.resolve(e2eDir, '../..');
const bin = process.env.HERALD_BIN ? path.resolve(process.env.HERALD_BIN) : '';

function docFiles() {
  const files = ['README.md', 'docs/laravel.md', 'docs/migrating.md', 'clients/pusher-js-recovery/README.md'];
  const pt = path.join(repo, 'docs/pt-BR');
  for (const f of fs.readdirSync(pt).sort()) if (f.endsWith('.md')) files.push(`docs/pt-BR/${f}`);
  return files;
}

/** Extracts the fenced blocks of a markdown file with their language, marker and line. */
export function extractBlocks(file, text) {
  const lines = text.split('\n');
  const blocks = [];
  let prev = '';
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)```(\S*)\s*(.*)$/.exec(lines[i]);
    if (!m) {
      if (lines[i].trim() !== '') prev = lines[i].trim();
      continue;
    }
    const indent = m[1].length;
    const start = i;
    const code = [];
    for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]); i++) code.push(lines[i].slice(indent));
    assert.ok(i < lines.length, `${file}:${start + 1}: unclosed code block`);
    const mk = /^<!--\s*snippet:\s*([a-z-]+)\s*(.*?)\s*-->$/.exec(prev);
    blocks.push({
      file,
      line: start + 1,
      lang: m[2].toLowerCase(),
      marker: mk ? mk[1] : '',
      args: mk ? mk[2] : '',
      code: code.join('\n') + '\n',
    });
    prev = '';
  }
  return blocks;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-docs-'));
// JS snippets are written inside test/e2e so that their imports resolve to its node_modules.
const jsDir = fs.mkdtempSync(path.join(e2eDir, '.snippets-'));
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.rmSync(jsDir, { recursive: true, force: true });
});

let seq = 0;
function tmpFile(name, content, dir = tmp) {
  const p = path.join(dir, `${++seq}-${name}`);
  fs.writeFileSync(p, content);
  return p;
}

function where(b) {
  return `${b.file}:${b.line}`;
}

/** Runs a command; returns {status, out} with stdout and stderr together. */
function runCmd(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

// What Herald accepts, asked from the binary and the source so it never goes stale.
function heraldFacts() {
  const help = runCmd(bin, ['serve', '--help']).out;
  const env = new Set(['HERALD_CONFIG']);
  for (const m of help.matchAll(/\(env (HERALD_[A-Z0-9_]+)\)/g)) env.add(m[1]);
  const appSrc = fs.readFileSync(path.join(repo, 'internal/apps/apps.go'), 'utf8');
  const appStruct = appSrc.slice(appSrc.indexOf('type App struct'), appSrc.indexOf('// LaravelRedis is'));
  for (const m of appStruct.matchAll(/yaml:"([a-z_]+)"/g)) env.add(`HERALD_APP_${m[1].toUpperCase()}`);
  const lr = appSrc.slice(appSrc.indexOf('type LaravelRedis struct'));
  for (const m of lr.slice(0, lr.indexOf('\n}')).matchAll(/yaml:"([a-z_]+)"/g)) env.add(`HERALD_APP_LARAVEL_REDIS_${m[1].toUpperCase()}`);
  const port = /-port port\n.*\(default "(\d+)"\)/.exec(help);
  assert.ok(port, 'serve --help shows no default port');
  return { env, port: port[1] };
}

const LARAVEL_VARS = new Set([
  'BROADCAST_CONNECTION', 'BROADCAST_DRIVER', 'QUEUE_CONNECTION',
  'REDIS_CLIENT', 'REDIS_HOST', 'REDIS_PORT', 'REDIS_PASSWORD', 'REDIS_PREFIX',
  ...['PUSHER', 'VITE_PUSHER'].flatMap((p) =>
    ['APP_ID', 'APP_KEY', 'APP_SECRET', 'HOST', 'PORT', 'SCHEME', 'APP_CLUSTER', 'ENCRYPTION_MASTER_KEY_BASE64'].map((k) => `${p}_${k}`)),
  ...['REVERB', 'VITE_REVERB'].flatMap((p) => ['APP_ID', 'APP_KEY', 'APP_SECRET', 'HOST', 'PORT', 'SCHEME'].map((k) => `${p}_${k}`)),
]);
const SECRET_IN_BROWSER = /^VITE_.*(SECRET|MASTER_KEY)/;

/** Parses a .env block as phpdotenv does for these simple forms. */
export function parseDotenv(code) {
  const vars = new Map();
  const problems = [];
  code.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) {
      problems.push(`line ${i + 1}: not KEY=VALUE: ${line}`);
      return;
    }
    let value = m[2];
    if (value.startsWith('"')) {
      const end = value.indexOf('"', 1);
      if (end < 0) problems.push(`line ${i + 1}: unclosed quote`);
      value = value.slice(1, end);
      value = value.replace(/\$\{([A-Z0-9_]+)\}/g, (_, name) => {
        if (!vars.has(name)) problems.push(`line ${i + 1}: \${${name}} is not set above it`);
        return vars.get(name) ?? '';
      });
    } else {
      value = value.replace(/\s+#.*$/, '').trim();
      if (/\s/.test(value)) problems.push(`line ${i + 1}: unquoted value with spaces`);
    }
    vars.set(m[1], value);
  });
  return { vars, problems };
}

function checkDotenv(b, facts) {
  const { vars, problems } = parseDotenv(b.code);
  for (const [k, v] of vars) {
    if (k.startsWith('HERALD_')) {
      if (!facts.env.has(k)) problems.push(`${k} is not a Herald variable`);
    } else if (!LARAVEL_VARS.has(k)) {
      problems.push(`${k} is not a variable the guide knows (add it to LARAVEL_VARS if Laravel reads it)`);
    }
    if (SECRET_IN_BROWSER.test(k)) problems.push(`${k}: a secret must never be given to Vite`);
    if (k === 'PUSHER_ENCRYPTION_MASTER_KEY_BASE64' && Buffer.from(v, 'base64').length !== 32) problems.push(`${k} is not 32 bytes`);
    if (/^BROADCAST_(CONNECTION|DRIVER)$/.test(k) && !['pusher', 'reverb', 'redis', 'log', 'null'].includes(v)) problems.push(`${k}=${v}`);
  }
  // A local Herald over plain HTTP listens on its default port.
  for (const p of ['PUSHER', 'REVERB', 'VITE_PUSHER', 'VITE_REVERB']) {
    const host = vars.get(`${p}_HOST`);
    const port = vars.get(`${p}_PORT`);
    const scheme = vars.get(`${p}_SCHEME`);
    if (port === undefined) continue;
    if (scheme === 'http' && ['127.0.0.1', 'localhost', 'host.docker.internal', 'herald'].includes(host) && port !== facts.port) {
      problems.push(`${p}_PORT=${port} but Herald listens on ${facts.port} by default`);
    }
    if (scheme === 'https' && port !== '443' && port !== facts.port) problems.push(`${p}_PORT=${port} with https: expected 443 (a proxy) or ${facts.port}`);
  }
  const herald = [...vars].filter(([k]) => k.startsWith('HERALD_'));
  if (herald.length > 0 && problems.length === 0) {
    const empty = tmpFile('empty.yaml', '');
    const env = { PATH: process.env.PATH };
    for (const [k, v] of herald) env[k] = v;
    const r = runCmd(bin, ['config', 'check', '--env', empty], { env });
    if (r.status !== 0) problems.push(`herald config check --env: ${r.out}`);
  }
  assert.deepEqual(problems, [], `${where(b)}: .env block:\n  ${problems.join('\n  ')}`);
  return vars;
}

function checkYaml(b) {
  const file = tmpFile('herald.yaml', b.code);
  const r = runCmd(bin, ['config', 'check', file]);
  if (b.marker === 'yaml-fails') {
    const keys = b.args.split(/\s+/).filter(Boolean);
    assert.notEqual(r.status, 0, `${where(b)}: expected herald config check to fail on ${keys}`);
    const problems = r.out.split('\n').filter((l) => /line \d+:/.test(l));
    assert.ok(problems.length > 0, `${where(b)}: no problem lines:\n${r.out}`);
    for (const p of problems) assert.ok(keys.some((k) => p.includes(k)), `${where(b)}: unexpected problem: ${p}`);
    return;
  }
  assert.equal(r.status, 0, `${where(b)}: herald config check failed:\n${r.out}\n--- block:\n${b.code}`);
}

function checkJs(b) {
  const file = tmpFile('snippet.mjs', b.code, jsDir);
  const r = runCmd(process.execPath, ['--check', file]);
  assert.equal(r.status, 0, `${where(b)}: node --check:\n${r.out}`);
}

function phpSource(b) {
  switch (b.marker) {
    case 'php-array':
      return `<?php\n$snippet = [\n${b.code}];\n`;
    case 'php-class': {
      const uses = b.code.split('\n').filter((l) => /^use\s/.test(l));
      const rest = b.code.split('\n').filter((l) => !/^use\s/.test(l));
      return `<?php\n${uses.join('\n')}\nclass Snippet {\n${rest.join('\n')}\n}\n`;
    }
    case 'php-statements':
      return `<?php\n${b.code}`;
    default:
      return b.code.startsWith('<?php') ? b.code : `<?php\n${b.code}`;
  }
}

function checkPhp(b) {
  const file = tmpFile('snippet.php', phpSource(b));
  const r = runCmd('php', ['-l', file]);
  assert.equal(r.status, 0, `${where(b)}: php -l (marker '${b.marker}'):\n${r.out}\n--- source:\n${phpSource(b)}`);
}

function checkSh(b, lastYaml) {
  const r = runCmd('bash', ['-n'], { input: b.code });
  assert.equal(r.status, 0, `${where(b)}: bash -n:\n${r.out}`);
  if (b.marker !== 'run') return;
  assert.ok(lastYaml, `${where(b)}: a run block needs a yaml block before it`);
  const dir = fs.mkdtempSync(path.join(tmp, 'run-'));
  fs.writeFileSync(path.join(dir, 'herald.yaml'), lastYaml.code);
  // `herald` on PATH is the binary under test, whatever its file name.
  const binDir = fs.mkdtempSync(path.join(tmp, 'bin-'));
  fs.symlinkSync(bin, path.join(binDir, 'herald'));
  const res = runCmd('bash', ['--norc', '--noprofile', '-euo', 'pipefail', '-c', b.code], {
    cwd: dir,
    env: { PATH: `${binDir}:${process.env.PATH}`, HOME: dir, PS1: '' },
  });
  assert.equal(res.status, 0, `${where(b)}: running the commands failed:\n${res.out}`);
}

function stripComments(y) {
  return y
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, ''))
    .filter((l) => l.trim() !== '' && !l.trim().startsWith('#'))
    .join('\n');
}

function checkJson(b, next) {
  JSON.parse(b.code);
  if (b.marker !== 'soketi-import') return;
  assert.ok(next && next.lang === 'yaml', `${where(b)}: soketi-import needs a yaml block after it`);
  const file = tmpFile('soketi.json', b.code);
  const r = spawnSync(bin, ['config', 'import', 'soketi', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${where(b)}: import failed: ${r.stderr}`);
  assert.equal(r.stderr, '', `${where(b)}: the import warned:\n${r.stderr}`);
  assert.equal(stripComments(r.stdout), stripComments(next.code), `${where(b)}: the doc's YAML is not what the import prints`);
}

/** Runs an Echo setup snippet against a real Herald and delivers one event through it. */
async function runEcho(b, envBlocks) {
  const prefix = /broadcaster:\s*'reverb'/.test(b.code) ? 'REVERB' : 'PUSHER';
  const source = envBlocks.find((e) => e.vars.get(`VITE_${prefix}_APP_KEY`) && e.vars.get(`${prefix}_APP_SECRET`));
  assert.ok(source, `${where(b)}: no .env block in ${b.file} with VITE_${prefix}_APP_KEY and ${prefix}_APP_SECRET`);
  const v = source.vars;
  const herald = await HeraldServer.start({
    apps: [{ id: v.get(`${prefix}_APP_ID`), key: v.get(`${prefix}_APP_KEY`), secret: v.get(`${prefix}_APP_SECRET`) }],
  });
  try {
    // The browser's values, with the port of this test's Herald.
    const env = {};
    for (const [k, val] of v) if (k.startsWith('VITE_')) env[k] = val;
    env[`VITE_${prefix}_HOST`] = '127.0.0.1';
    env[`VITE_${prefix}_PORT`] = String(herald.port);
    env[`VITE_${prefix}_SCHEME`] = 'http';
    globalThis.window = globalThis;
    globalThis.__snippetEnv = env;
    const code = b.code.replaceAll('import.meta.env', 'globalThis.__snippetEnv');
    const file = tmpFile('echo.mjs', code, jsDir);
    await import(pathToFileURL(file).href);
    const echo = globalThis.window.Echo;
    assert.ok(echo, `${where(b)}: the snippet did not set window.Echo`);
    try {
      await waitUntil(() => echo.connector.pusher.connection.state === 'connected', { timeout: 10_000, what: 'Echo connected' });
      const got = [];
      await withTimeout(
        new Promise((resolve, reject) => {
          const ch = echo.channel('orders').listen('OrderShipped', (e) => got.push(e));
          ch.subscribed(resolve);
          ch.error(reject);
        }),
        10_000,
        'subscribed',
      );
      // Published the way Laravel's pusher broadcaster does, with the .env block's credentials.
      const api = new PusherServer({
        appId: v.get(`${prefix}_APP_ID`), key: v.get(`${prefix}_APP_KEY`), secret: v.get(`${prefix}_APP_SECRET`),
        host: '127.0.0.1', port: String(herald.port), useTLS: false,
      });
      await api.trigger(['orders'], 'App\\Events\\OrderShipped', { order: { id: 7 } });
      await waitUntil(() => got.length === 1, { timeout: 10_000, what: 'OrderShipped through the snippet' });
      assert.deepEqual(got[0], { order: { id: 7 } });
    } finally {
      echo.disconnect();
      delete globalThis.window.Echo;
      delete globalThis.window.Pusher;
    }
  } finally {
    await herald.stop();
  }
}

// snake_case names in backticks that are not Herald keys: other servers' and Laravel's
// settings, protocol fields, metric labels. A key the guides name must be one of these or
// a key Herald reads.
const FOREIGN_NAMES = new Set([
  'app_provider', 'bad_payload', 'channel_data', 'channel_manager', 'client_event', 'client_options',
  'connection_established', 'epoch_changed', 'failed_jobs', 'herald_', 'lambda_function', 'laravel_database_',
  'last_offset', 'local_cert', 'local_pk', 'max_request_size_in_kb', 'my_shop_database_', 'no_history', 'not_json',
  'proxy_read_timeout', 'rate_limited', 'shared_secret', 'snake_case', 'socket_id',
  'telescope_ingest_interval', 'too_large', 'too_old', 'user_info', 'xhr_streaming',
]);

function heraldKeys() {
  const keys = new Set();
  for (const dir of ['internal/config', 'internal/apps']) {
    for (const f of fs.readdirSync(path.join(repo, dir))) {
      if (!f.endsWith('.go') || f.endsWith('_test.go')) continue;
      for (const m of fs.readFileSync(path.join(repo, dir, f), 'utf8').matchAll(/yaml:"([a-z0-9_]+)/g)) keys.add(m[1]);
    }
  }
  return keys;
}

function closeCodes() {
  const src = fs.readFileSync(path.join(repo, 'internal/protocol/codes.go'), 'utf8');
  return new Set([...src.matchAll(/=\s*(4\d{3})\b/g)].map((m) => m[1]));
}

describe('docs snippets', () => {
  it('the extractor finds blocks, markers and lines', () => {
    const blocks = extractBlocks('x.md', 'a\n<!-- snippet: skip (why) -->\n```sh\necho\n```\n\n```yaml\nport: 1\n```\n');
    assert.deepEqual(blocks.map((b) => [b.lang, b.marker, b.line]), [['sh', 'skip', 3], ['yaml', '', 7]]);
    assert.deepEqual(parseDotenv('A=1 # c\nB="${A}x"\n').vars, new Map([['A', '1'], ['B', '1x']]));
    assert.match(parseDotenv('B="${NOPE}"\n').problems[0], /NOPE/);
  });

  assert.ok(bin, 'HERALD_BIN is not set: run through `make e2e` or set it to a built herald');
  const facts = heraldFacts();

  const keys = heraldKeys();
  const codes = closeCodes();
  const guides = docFiles().filter((f) => f !== 'README.md');
  it('every config key and close code the guides name exists in the code', () => {
    const problems = [];
    for (const file of guides) {
      const text = fs.readFileSync(path.join(repo, file), 'utf8');
      for (const m of text.matchAll(/`([a-z][a-z0-9]*_[a-z0-9_]*)`/g)) {
        if (!keys.has(m[1]) && !FOREIGN_NAMES.has(m[1])) problems.push(`${file}: \`${m[1]}\` is not a Herald key (nor in FOREIGN_NAMES)`);
      }
      // Close and error codes: "code 4009", "**4009**", "4301 (...)"; range ends (4099) aside.
      for (const m of text.matchAll(/\b(4[0-3]\d\d)\b/g)) {
        if (!/99$/.test(m[1]) && !codes.has(m[1])) problems.push(`${file}: code ${m[1]} is not in internal/protocol/codes.go`);
      }
    }
    assert.deepEqual([...new Set(problems)], []);
  });

  for (const file of docFiles()) {
    it(`${file}: every block is checked`, async () => {
      const blocks = extractBlocks(file, fs.readFileSync(path.join(repo, file), 'utf8'));
      if (file === 'docs/laravel.md') assert.ok(blocks.length > 20, `${file}: only ${blocks.length} code blocks found`);
      const envBlocks = [];
      const runs = [];
      let lastYaml = null;
      let checked = 0;
      const failures = [];
      blocks.forEach((b, i) => {
        try {
          checkBlock(b, i);
        } catch (err) {
          failures.push(err.message);
        }
      });
      function checkBlock(b, i) {
        if (b.marker === 'skip') {
          assert.ok(b.args !== '', `${where(b)}: say why a block is skipped: <!-- snippet: skip (reason) -->`);
          return;
        }
        assert.ok(['', 'run-echo', 'run', 'yaml-fails', 'soketi-import', 'php-array', 'php-class', 'php-statements'].includes(b.marker),
          `${where(b)}: unknown marker '${b.marker}'`);
        checked++;
        switch (b.lang) {
          case 'dotenv':
          case 'env':
            envBlocks.push({ vars: checkDotenv(b, facts) });
            break;
          case 'yaml':
          case 'yml':
            lastYaml = b;
            checkYaml(b);
            break;
          case 'js':
          case 'javascript':
            checkJs(b);
            if (b.marker === 'run-echo') runs.push(b);
            break;
          case 'php':
            checkPhp(b);
            break;
          case 'sh':
          case 'bash':
            checkSh(b, lastYaml);
            break;
          case 'json':
            checkJson(b, blocks[i + 1]);
            break;
          default:
            // The README is shared with other guides' blocks (nginx, Dockerfile...): only
            // the languages above are checked there.
            if (file === 'README.md') return;
            assert.fail(`${where(b)}: a \`\`\`${b.lang || '(no language)'} block is not checked: give it a language this test knows, or <!-- snippet: skip (reason) -->`);
        }
      }
      for (const b of runs) {
        try {
          await runEcho(b, envBlocks);
        } catch (err) {
          failures.push(`${where(b)}: ${err.message}`);
        }
      }
      assert.deepEqual(failures, [], `${failures.length} snippet(s) of ${file} fail:\n\n${failures.join('\n\n')}`);
    });
  }
});
