package leadscore.peer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.File;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * Kafka Streams peer of leadscore for scripts/bench-service.sh: a KStream keyed by lead, JSON in,
 * per-lead state in a persistent (RocksDB) key-value store with its changelog, the benchmark
 * scoring ({@link Scoring}), sales_ready JSON out. Stops after N input messages and prints its
 * rate and CPU time as one JSON line.
 *
 * <pre>
 * java -cp ... leadscore.peer.App BROKERS INPUT OUTPUT RULES.json N STATE_DIR
 * java -cp ... leadscore.peer.App offline RULES.json EVENTS.ndjson   (alerts per lead, no Kafka)
 * </pre>
 */
public final class App {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String STORE = "leads";
    private static final AtomicLong SEEN = new AtomicLong();
    private static final AtomicLong ALERTS = new AtomicLong();
    private static volatile long firstNanos;
    private static volatile long firstCpu;

    public static void main(String[] args) throws Exception {
        if (args[0].equals("offline")) {
            offline(args[1], args[2]);
            return;
        }
        String brokers = args[0], input = args[1], output = args[2];
        Scoring rules = new Scoring(JSON.readTree(new File(args[3])));
        long n = Long.parseLong(args[4]);
        StreamsBuilder builder = new StreamsBuilder();
        builder.addStateStore(Stores.keyValueStoreBuilder(
                Stores.persistentKeyValueStore(STORE), Serdes.String(), Serdes.ByteArray()));
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                .processValues(() -> new Scorer(rules), STORE)
                .to(output, Produced.with(Serdes.String(), Serdes.String()));
        try (KafkaStreams streams = new KafkaStreams(builder.build(), config(brokers, args[5]))) {
            streams.start();
            while (SEEN.get() < n) {
                Thread.sleep(5);
            }
            double secs = (System.nanoTime() - firstNanos) / 1e9;
            double cpu = (cpuNanos() - firstCpu) / 1e9;
            System.out.printf("{\"peer\": \"kafka-streams\", \"events\": %d, \"seconds\": %.3f, "
                    + "\"cpu_seconds\": %.3f, \"sales_ready\": %d}%n", SEEN.get(), secs, cpu, ALERTS.get());
        }
    }

    /** leadscore's settings where Kafka Streams has its own defaults: a 1 s commit interval,
     * at-least-once, read_committed input, idempotent output with acks from all replicas. */
    private static Properties config(String brokers, String stateDir) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, "kstreams-peer-" + System.currentTimeMillis());
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 1000);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.ISOLATION_LEVEL_CONFIG), "read_committed");
        p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 5);
        p.put(StreamsConfig.producerPrefix(ProducerConfig.ACKS_CONFIG), "all");
        p.put(StreamsConfig.producerPrefix(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG), true);
        return p;
    }

    private static long cpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime();
    }

    /** Scores each event against its lead's stored state; forwards only alerts. */
    static final class Scorer implements FixedKeyProcessor<String, String, String> {
        private final Scoring rules;
        private FixedKeyProcessorContext<String, String> context;
        private KeyValueStore<String, byte[]> store;

        Scorer(Scoring rules) {
            this.rules = rules;
        }

        @Override
        public void init(FixedKeyProcessorContext<String, String> context) {
            this.context = context;
            this.store = context.getStateStore(STORE);
        }

        @Override
        public void process(FixedKeyRecord<String, String> record) {
            if (firstNanos == 0) {
                firstCpu = cpuNanos();
                firstNanos = System.nanoTime();
            }
            try {
                JsonNode ev = JSON.readTree(record.value());
                byte[] stored = store.get(record.key());
                Scoring.LeadState st = stored == null
                        ? new Scoring.LeadState(rules.engagement.size())
                        : Scoring.LeadState.decode(stored, rules.engagement.size());
                String alert = rules.score(st, ev);
                store.put(record.key(), st.encode());
                if (alert != null) {
                    ALERTS.incrementAndGet();
                    context.forward(record.withValue(alert));
                }
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
            SEEN.incrementAndGet();
        }
    }

    private static void offline(String rulesJson, String events) throws Exception {
        Scoring rules = new Scoring(JSON.readTree(new File(rulesJson)));
        Map<String, Scoring.LeadState> states = new HashMap<>();
        Map<String, Integer> alerts = new java.util.TreeMap<>();
        try (BufferedReader r = Files.newBufferedReader(Path.of(events))) {
            for (String line; (line = r.readLine()) != null; ) {
                JsonNode ev = JSON.readTree(line);
                String lead = ev.get("lead_id").asText();
                Scoring.LeadState st = states.computeIfAbsent(lead, k -> new Scoring.LeadState(rules.engagement.size()));
                if (rules.score(st, ev) != null) {
                    alerts.merge(lead, 1, Integer::sum);
                }
            }
        }
        alerts.forEach((lead, k) -> System.out.println(lead + " " + k));
    }
}
