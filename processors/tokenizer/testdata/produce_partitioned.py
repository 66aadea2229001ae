"""Produce payments with librdkafka (confluent-kafka) and a chosen partitioner.

Usage: produce_partitioned.py BROKER TOPIC PARTITIONER FILE
FILE holds one record per line: key, a tab, the JSON value. librdkafka's
default partitioner is consistent_random (CRC32 of the key), not the Java
client's murmur2: the same key can land on another partition than a Java or
franz-go producer puts it on. Prints the partition of every record.
"""
import sys

from confluent_kafka import Producer

broker, topic, partitioner, path = sys.argv[1:5]
p = Producer({"bootstrap.servers": broker, "partitioner": partitioner, "acks": "all"})
parts = []


def delivered(err, msg):
    if err is not None:
        raise SystemExit(str(err))
    parts.append(str(msg.partition()))


with open(path) as f:
    for line in f:
        key, value = line.rstrip("\n").split("\t", 1)
        p.produce(topic, key=key.encode(), value=value.encode(), on_delivery=delivered)
p.flush(30)
print(" ".join(parts))
