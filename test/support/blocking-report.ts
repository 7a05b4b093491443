// Preloaded into every test file's process (scripts/test.sh: `node --import`).
// Node's test runner, with --test-force-exit and a process per test file,
// can lose a file's last verdicts: the child streams its report to the
// runner through a pipe, writes to a pipe are asynchronous on Linux, and the
// forced process.exit() drops what is still buffered. The runner then
// reports fewer tests than ran, and still exits 0 (nodejs/node#64833; on
// this repository's suite, 8 of 545 tests once went missing that way).
// Writing the report synchronously leaves nothing to drop.
//
// Only in a test file's process (the runner marks it with
// NODE_TEST_CONTEXT); the processes tests start (the origin, whose logs must
// never block it) are not preloaded and keep their asynchronous stdout.
if (process.env.NODE_TEST_CONTEXT === 'child-v8') {
  // `_handle` is Node's internal pipe handle; setBlocking is what Node itself
  // calls on stdio pipes where it wants synchronous writes. Absent (a TTY, a
  // worker thread's stdout), there is nothing to do.
  const handle = (process.stdout as unknown as { _handle?: { setBlocking?: (blocking: boolean) => number } })._handle;
  handle?.setBlocking?.(true);
}
