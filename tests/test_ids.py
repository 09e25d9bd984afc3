"""Ids: random, 32 hex digits, never the same twice, also across threads and a fork."""

import os
import re
import threading

from models.base import new_id

HEX32 = re.compile(r"[0-9a-f]{32}")


def test_ids_are_32_hex_digits_and_distinct_past_one_read_of_random_bytes():
    ids = [new_id() for _ in range(1000)]   # about four reads of 4 KiB
    assert all(HEX32.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_threads_get_distinct_ids():
    got = [[] for _ in range(4)]

    def take(into):
        for _ in range(500):
            into.append(new_id())

    threads = [threading.Thread(target=take, args=(into,)) for into in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for into in got for i in into]
    assert len(set(every)) == len(every) == 2000


def test_a_forked_child_does_not_hand_out_its_parents_next_ids():
    new_id()  # random bytes are held now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, "".join(new_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    parent = "".join(new_id() for _ in range(5))
    assert len(child) == len(parent) == 160
    assert child != parent
