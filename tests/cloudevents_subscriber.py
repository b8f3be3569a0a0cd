"""A CloudEvents subscriber, as a downstream team would write one: it reads a topic from the
beginning with confluent-kafka (read_committed), converts each record with the CloudEvents
Python SDK's Kafka protocol binding (binary mode), and prints one JSON line per event with its
context attributes and the Kafka key. Used by tests/cloudevents.rs.

usage: cloudevents_subscriber.py BROKERS TOPIC COUNT
"""
import json
import sys
import time

from cloudevents.v1.kafka import KafkaMessage, from_binary
from confluent_kafka import Consumer

brokers, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
consumer = Consumer({
    "bootstrap.servers": brokers,
    "group.id": f"cloudevents-subscriber-{topic}-{time.time_ns()}",
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "isolation.level": "read_committed",
})
consumer.subscribe([topic])
seen, deadline = 0, time.time() + 60
while seen < count and time.time() < deadline:
    msg = consumer.poll(0.5)
    if msg is None or msg.error():
        continue
    message = KafkaMessage(headers=dict(msg.headers() or []), key=msg.key(), value=msg.value())
    event = from_binary(message, data_unmarshaller=lambda raw: raw)
    attributes = {k: v for k, v in event.get_attributes().items() if k != "partitionkey"}
    print(json.dumps({
        "attributes": attributes,
        "key": msg.key().decode() if msg.key() else None,
        "data_bytes": len(event.get_data() or b""),
    }), flush=True)
    seen += 1
consumer.close()
sys.exit(0 if seen == count else 1)
