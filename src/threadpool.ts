/**
 * Imported first by the CLI: libuv reads UV_THREADPOOL_SIZE when its thread
 * pool starts, at the first file operation. A receiver of many small files
 * keeps one fsync per file in flight, many at once; with the default 4
 * threads they queue, while the file system could commit them together.
 */
process.env.UV_THREADPOOL_SIZE ??= '32';
