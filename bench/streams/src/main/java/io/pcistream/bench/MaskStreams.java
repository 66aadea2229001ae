package io.pcistream.bench;

import java.nio.charset.StandardCharsets;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;

/**
 * The published log-masking job as users would write it in Kafka Streams: the pattern
 * {@code \b(?:\d[ -]*?){13,16}\b} (the same one the Go regexp baseline in bench/detector
 * uses), a Luhn check on each match's digits, and every digit but the first six and the
 * last four of a Luhn-valid match replaced by '*', separators kept. Records are bytes;
 * ISO-8859-1 maps each byte to one char, so the output has the input's bytes where no
 * PAN is, as Go's byte-oriented regexp does.
 */
public final class MaskStreams {
    static final Pattern PAN = Pattern.compile("\\b(?:\\d[ -]*?){13,16}\\b");

    private MaskStreams() {}

    static boolean luhn(CharSequence s, int from, int to) {
        int sum = 0;
        boolean dbl = false;
        for (int i = to - 1; i >= from; i--) {
            char c = s.charAt(i);
            if (c < '0' || c > '9') {
                continue;
            }
            int d = c - '0';
            if (dbl) {
                d *= 2;
                if (d > 9) {
                    d -= 9;
                }
            }
            sum += d;
            dbl = !dbl;
        }
        return sum % 10 == 0;
    }

    static byte[] mask(byte[] value) {
        if (value == null) {
            return null;
        }
        String s = new String(value, StandardCharsets.ISO_8859_1);
        Matcher m = PAN.matcher(s);
        StringBuilder out = null;
        while (m.find()) {
            if (!luhn(s, m.start(), m.end())) {
                continue;
            }
            if (out == null) {
                out = new StringBuilder(s);
            }
            int digits = 0;
            for (int i = m.start(); i < m.end(); i++) {
                if (Character.isDigit(s.charAt(i))) {
                    digits++;
                }
            }
            int seen = 0;
            for (int i = m.start(); i < m.end(); i++) {
                char c = s.charAt(i);
                if (c >= '0' && c <= '9') {
                    if (seen >= 6 && seen < digits - 4) {
                        out.setCharAt(i, '*');
                    }
                    seen++;
                }
            }
        }
        return out == null ? value : out.toString().getBytes(StandardCharsets.ISO_8859_1);
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: MaskStreams BOOTSTRAP IN OUT APPLICATION_ID [exactly_once_v2|at_least_once]");
            System.exit(2);
        }
        Properties p = new Properties();
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, args[3]);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, args.length > 4 ? args[4] : StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.STATE_DIR_CONFIG, System.getProperty("java.io.tmpdir") + "/pcistream-streams-" + args[3]);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        StreamsBuilder b = new StreamsBuilder();
        b.stream(args[1], Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
            .mapValues(MaskStreams::mask)
            .to(args[2], Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));
        KafkaStreams ks = new KafkaStreams(b.build(), p);
        CountDownLatch done = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            ks.close();
            done.countDown();
        }));
        ks.setStateListener((now, old) -> {
            if (now == KafkaStreams.State.RUNNING) {
                System.out.println("RUNNING");
                System.out.flush();
            }
            if (now == KafkaStreams.State.ERROR) {
                System.err.println("streams entered ERROR");
                System.exit(1);
            }
        });
        ks.start();
        done.await();
    }
}
