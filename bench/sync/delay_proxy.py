"""A TCP proxy on loopback that adds a fixed delay each way (default 25 ms: a 50 ms round trip, about
Texas to New York), so `handoff sync` and the naive loop are measured as on a real link. Bytes keep their
order; each chunk is delivered DELAY after it arrived (a pipe, not a stop-and-wait). It counts the TCP
connections it accepted and the HTTP requests that went through (request lines seen from clients) in
COUNT_FILE, as `connections requests`.

Usage: python3 delay_proxy.py LISTEN_PORT TARGET_PORT [DELAY_MS] [COUNT_FILE]"""
import asyncio, re, sys, time

listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
delay = (float(sys.argv[3]) if len(sys.argv) > 3 else 25.0) / 1000.0
count_file = sys.argv[4] if len(sys.argv) > 4 else None
connections = requests = 0
REQUEST_LINE = re.compile(rb"(?:^|\r\n)(GET|POST|PUT|DELETE|HEAD) /[^ ]* HTTP/1\.[01]\r\n")


def save():
    if count_file:
        with open(count_file, "w") as f:
            f.write(f"{connections} {requests}\n")


async def pipe(reader, writer, count):
    global requests
    queue = asyncio.Queue()

    async def deliver():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    task = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if count:
                requests += len(REQUEST_LINE.findall(data))
                save()
            queue.put_nowait((time.monotonic() + delay, data))
    except ConnectionError:
        pass
    queue.put_nowait((time.monotonic() + delay, None))
    try:
        await task
    except ConnectionError:
        pass


async def handle(client_r, client_w):
    global connections
    connections += 1
    save()
    await asyncio.sleep(delay)  # the SYN travels too: connecting costs a round trip on a real link
    try:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target_port)
    except OSError:
        client_w.close()
        return
    await asyncio.sleep(delay)
    await asyncio.gather(pipe(client_r, server_w, True), pipe(server_r, client_w, False))


async def main():
    save()
    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


asyncio.run(main())
