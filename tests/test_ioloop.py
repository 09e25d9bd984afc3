"""PausingIOLoop: a reader nobody reads stays registered, and never hears of data meanwhile."""

import asyncio
import socket

from tornado.ioloop import IOLoop

from server.ioloop import PausingIOLoop


def test_a_paused_reader_hears_nothing_until_read_again_and_then_gets_the_data():
    async def scenario():
        loop = PausingIOLoop()
        ours, peer = socket.socketpair()
        ours.setblocking(False)
        heard = []
        woken = asyncio.Event()

        def on_events(sock, events):
            heard.append(sock.recv(100))
            woken.set()

        try:
            loop.add_handler(ours, on_events, IOLoop.READ)
            loop.update_handler(ours, IOLoop.ERROR)     # the stream stops reading
            assert ours.fileno() in loop.paused and ours.fileno() in loop.readers  # no epoll_ctl
            peer.send(b"early")                         # readable while paused
            for _ in range(20):
                await asyncio.sleep(0)
            assert heard == []                          # not delivered ...
            assert ours.fileno() not in loop.readers    # ... and now out of epoll, as stock tornado has it
            loop.update_handler(ours, IOLoop.READ)      # reading again
            await asyncio.wait_for(woken.wait(), 30)
            assert heard == [b"early"]
            woken.clear()
            loop.update_handler(ours, IOLoop.ERROR)
            loop.update_handler(ours, IOLoop.READ)      # resumed without leaving epoll
            assert not loop.paused
            peer.send(b"next")
            await asyncio.wait_for(woken.wait(), 30)
            assert heard == [b"early", b"next"]
            loop.update_handler(ours, IOLoop.ERROR)
            loop.remove_handler(ours)
            assert not loop.paused and ours.fileno() not in loop.readers
        finally:
            ours.close()
            peer.close()
            del IOLoop._ioloop_for_asyncio[asyncio.get_running_loop()]

    asyncio.run(scenario())
