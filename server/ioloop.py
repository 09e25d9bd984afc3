"""The IOLoop: tornado's on asyncio, minus two system calls per request.

tornado's asyncio bridge has no "errors only" interest, so when an IOStream
stops reading, its socket leaves epoll (`remove_reader`), and it comes back
when the stream reads again: two `epoll_ctl` calls, and asyncio's selector
bookkeeping, for every request on a kept-alive connection (the body comes
with the headers, so the stream stops reading while the handler runs). Here
such a socket stays registered, paused. If it turns readable while paused
(the client sent more, or hung up), it leaves epoll then, without waking its
stream, and the data waits in the kernel until the stream reads again, as
before.
"""

from tornado.ioloop import IOLoop
from tornado.platform.asyncio import AsyncIOMainLoop

READ = IOLoop.READ


class PausingIOLoop(AsyncIOMainLoop):
    """tornado's IOLoop for the running asyncio loop, keeping paused readers registered.

    Make one before anything calls `IOLoop.current()` on that loop.
    """

    def initialize(self, **kwargs):
        self.paused = set()   # fds registered for reads that nobody reads now
        super().initialize(**kwargs)

    def update_handler(self, fd, events):
        fd, _ = self.split_fd(fd)
        if events & READ:
            self.paused.discard(fd)
        elif fd in self.readers:
            self.paused.add(fd)
            events |= READ    # stays registered
        super().update_handler(fd, events)

    def remove_handler(self, fd):
        self.paused.discard(self.split_fd(fd)[0])
        super().remove_handler(fd)

    def _handle_events(self, fd, events):
        if events == READ and fd in self.paused:
            # Readable while nobody reads: what stock tornado would have unregistered.
            self.paused.discard(fd)
            self.readers.discard(fd)
            self.selector_loop.remove_reader(fd)
            return
        super()._handle_events(fd, events)
