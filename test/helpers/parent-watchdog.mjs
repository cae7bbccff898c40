// Preloaded (node --import) into the service processes the cluster tests start: ends the process at once when the
// test process that started it is gone, which closes the other end of its stdin pipe. A test worker that crashes or
// is killed, and so cannot run its cleanup, leaves no member running. Nothing else of the service changes.
const { stdin } = process;
const die = () => process.kill(process.pid, 'SIGKILL');
stdin.on('end', die);
stdin.on('error', die);
stdin.resume();
// It never keeps the process alive by itself.
stdin.unref();
