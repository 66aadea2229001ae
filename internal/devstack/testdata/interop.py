"""Interop check: librdkafka (confluent-kafka) against pcistream's dev broker.

Produces three records in a committed transaction and one in an aborted
one, then consumes with isolation.level=read_committed and prints the
values it saw, one per line.
"""
import sys

from confluent_kafka import Consumer, Producer

broker, topic = sys.argv[1], sys.argv[2]

p = Producer({"bootstrap.servers": broker, "transactional.id": "py-interop"})
p.init_transactions(10)
p.begin_transaction()
for v in ("one", "two", "three"):
    p.produce(topic, value=v.encode())
p.commit_transaction(10)
p.begin_transaction()
p.produce(topic, value=b"aborted")
p.flush(10)
p.abort_transaction(10)

c = Consumer({
    "bootstrap.servers": broker,
    "group.id": "py-interop",
    "auto.offset.reset": "earliest",
    "isolation.level": "read_committed",
    "enable.partition.eof": True,
})
c.subscribe([topic])
seen = []
while True:
    m = c.poll(10)
    if m is None:
        break
    if m.error():
        if m.error().code() == -191:  # _PARTITION_EOF
            break
        raise SystemExit(str(m.error()))
    seen.append(m.value().decode())
c.close()
print("\n".join(seen))
