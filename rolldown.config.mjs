// The `ferry` command as one file: start-up reads and compiles one module
// instead of some two hundred (yargs and its helpers), which measured about
// 100 ms less CPU per process start here (363 -> 261 ms user for --version).
// The library (dist/index.js) stays as tsc emits it.
export default {
  input: 'dist/main.js',
  platform: 'node',
  // A native addon, and a module the CLI loads only when it draws a bar.
  external: ['@napi-rs/blake-hash', 'cli-progress'],
  output: { file: 'dist/ferry.mjs', format: 'esm' },
};
