#!/usr/bin/env node
// A native-solc-compatible front end over the npm `solc` library (solc-js).
// Supports what py-solc-x needs: `--version` and `--standard-json` (input on stdin,
// output JSON only on stdout). `--base-path DIR` and `--allow-paths A,B` bound imports.
'use strict';
const fs = require('fs');
const path = require('path');

function loadSolc() {
  const root = path.resolve(__dirname, '..', 'node_modules', 'solc');
  try { return require(root); } catch (e) { return require('solc'); }
}

function main(argv) {
  const solc = loadSolc();
  if (argv.includes('--version')) {
    process.stdout.write('solc, the solidity compiler commandline interface\nVersion: ' + solc.version() + '\n');
    return 0;
  }
  if (!argv.includes('--standard-json')) {
    process.stderr.write('solc-wrapper: only --version and --standard-json are supported\n');
    return 2;
  }
  let basePath = process.cwd();
  let allowed = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--base-path') basePath = path.resolve(argv[++i]);
    else if (argv[i] === '--allow-paths') allowed = argv[++i].split(',').map((p) => path.resolve(p));
  }
  const roots = [basePath, ...allowed];
  const input = fs.readFileSync(0, 'utf8');
  function findImports(name) {
    for (const root of roots) {
      const full = path.resolve(root, name);
      if (!roots.some((r) => full === r || full.startsWith(r + path.sep))) continue;
      if (fs.existsSync(full)) return { contents: fs.readFileSync(full, 'utf8') };
    }
    return { error: 'File not found: ' + name };
  }
  process.stdout.write(solc.compile(input, { import: findImports }));
  return 0;
}

process.exitCode = main(process.argv.slice(2));
