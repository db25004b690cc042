/**
 * Imported first by the CLI: libuv reads UV_THREADPOOL_SIZE when its thread
 * pool starts, at the first file operation. A receiver of many small files
 * keeps one fsync per file in flight, many at once; with the default 4
 * threads they queue, while the file system could commit them together.
 *
 * Not for library users: the thread pool belongs to the whole process, and
 * by the time `import 'ferry'` runs the host program may have started it
 * already, so setting it there would be a side effect that works or not by
 * import order. A program that embeds a busy receiver sets
 * UV_THREADPOOL_SIZE itself, before it starts (README, "As a library").
 */
process.env.UV_THREADPOOL_SIZE ??= '32';
