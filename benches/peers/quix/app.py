"""Quix Streams peer of leadscore for scripts/bench-service.sh: JSON lead events in, per-lead
state in Quix's RocksDB state store (with its changelog topic), the benchmark scoring
(scoring.py), sales_ready JSON out. Stops after N input messages and prints its rate and CPU.

    python app.py BROKERS INPUT_TOPIC OUTPUT_TOPIC RULES N STATE_DIR
"""

import json
import sys
import time

from quixstreams import Application

import scoring


def main():
    brokers, input_topic, output_topic, rules_path, n, state_dir = sys.argv[1:7]
    n = int(n)
    rules = scoring.Rules(rules_path)
    app = Application(
        broker_address=brokers,
        consumer_group=f"quix-peer-{int(time.time())}",
        auto_offset_reset="earliest",
        # leadscore's checkpoint interval and guarantee.
        commit_interval=1.0,
        processing_guarantee="at-least-once",
        state_dir=state_dir,
        use_changelog_topics=True,
        loglevel="WARNING",
        consumer_extra_config={"isolation.level": "read_committed"},
        producer_extra_config={"enable.idempotence": True, "acks": "all", "linger.ms": 5},
    )
    source = app.topic(input_topic, key_deserializer="str", value_deserializer="json")
    sink = app.topic(output_topic, key_serializer="str", value_serializer="json")
    progress = {"seen": 0, "first": None, "cpu0": None, "alerts": 0}

    def score(event, state):
        if progress["first"] is None:
            progress["first"], progress["cpu0"] = time.monotonic(), time.process_time()
        st = state.get("lead") or scoring.new_state()
        alert = scoring.score(rules, st, event)
        state.set("lead", st)
        progress["seen"] += 1
        if alert is not None:
            progress["alerts"] += 1
        if progress["seen"] >= n:
            app.stop()
        return alert

    sdf = app.dataframe(source)
    sdf = sdf.apply(score, stateful=True).filter(lambda alert: alert is not None)
    sdf.to_topic(sink)
    app.run()
    secs = time.monotonic() - progress["first"]
    cpu = time.process_time() - progress["cpu0"]
    print(json.dumps({"peer": "quix-streams", "events": progress["seen"], "seconds": secs,
                      "cpu_seconds": cpu, "sales_ready": progress["alerts"]}))


if __name__ == "__main__":
    main()
