"""Checks one reader's sales_ready topic against `leadscore replay` for scripts/bench-service.sh:
the same number of sales_ready events for the same leads (per lead, duplicates counted).

    python bench_peers_check.py BROKERS TOPIC REPLAY_OUTPUT.ndjson
Prints one line; exits 1 on a difference."""

import collections
import json
import sys
import time

from confluent_kafka import Consumer, TopicPartition


def read_topic(brokers, topic):
    c = Consumer({"bootstrap.servers": brokers, "group.id": "bench-check", "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    parts = c.list_topics(topic, timeout=30).topics[topic].partitions
    ends, tps = {}, []
    for p in parts:
        low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
        if high > low:
            ends[p] = high
            tps.append(TopicPartition(topic, p, low))
    c.assign(tps)
    counts = collections.Counter()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        msgs = c.consume(10000, timeout=2)
        for m in msgs:
            if not m.error():
                counts[json.loads(m.value())["lead_id"]] += 1
        if not msgs:
            # Read to the end once every position passed its end offset (transaction markers
            # included, which are never delivered).
            positions = c.position([TopicPartition(topic, p) for p in ends])
            if all(tp.offset >= ends[tp.partition] for tp in positions):
                break
    else:
        sys.exit(f"{topic}: not read to its end within 600 s")
    c.close()
    return counts


def main():
    brokers, topic, replay = sys.argv[1:4]
    want = collections.Counter(json.loads(line)["lead_id"] for line in open(replay))
    got = read_topic(brokers, topic)
    differ = sorted(lead for lead in want.keys() | got.keys() if want[lead] != got[lead])
    print(f"{topic}: {sum(got.values())} sales_ready for {len(got)} leads; replay {sum(want.values())} "
          f"for {len(want)}; leads that differ: {len(differ)} {differ[:5]}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
