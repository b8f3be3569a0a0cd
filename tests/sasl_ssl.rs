//! SASL/SCRAM-SHA-512 over TLS on Apache Kafka: a CA and a broker certificate made with
//! openssl, a broker with a SASL_SSL listener and a SCRAM user, and the service configured only
//! through `LEADSCORE_KAFKA_*` settings. Everything works, and the password appears neither in
//! the log nor in `run --check`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

const PASSWORD: &str = "s3cret-scram-password-Zq8";
const STORE_PASSWORD: &str = "keystore-pass-1";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a broker key and certificate for 127.0.0.1 signed by it, as a PKCS12 keystore.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=leadscore-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "broker.key",
            "-out",
            "broker.csr",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "broker.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "broker.pem",
        ],
    );
    openssl(
        dir,
        &[
            "pkcs12",
            "-export",
            "-in",
            "broker.pem",
            "-inkey",
            "broker.key",
            "-certfile",
            "ca.pem",
            "-name",
            "broker",
            "-out",
            "broker.p12",
            "-passout",
            &format!("pass:{STORE_PASSWORD}"),
        ],
    );
}

#[test]
fn the_service_runs_over_sasl_ssl_and_never_shows_the_password() {
    let dir = std::env::temp_dir().join(unique("sasl-ssl"));
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir);
    let sasl_port = free_port();
    let props = format!(
        "listeners=PLAINTEXT://127.0.0.1:{{port}},CONTROLLER://127.0.0.1:{{cport}},SASL_SSL://127.0.0.1:{sasl_port}\n\
         advertised.listeners=PLAINTEXT://127.0.0.1:{{port}},SASL_SSL://127.0.0.1:{sasl_port}\n\
         sasl.enabled.mechanisms=SCRAM-SHA-512\n\
         listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;\n\
         ssl.keystore.type=PKCS12\nssl.keystore.location={}\nssl.keystore.password={STORE_PASSWORD}\nssl.key.password={STORE_PASSWORD}\n",
        dir.join("broker.p12").display()
    );
    // The node's own ports are known only once OwnKafka picks them: start-kafka.sh appends these
    // properties after its own, so `listeners` here names all three.
    let kafka = OwnKafka::start_with_props(
        1,
        |port, cport| {
            props
                .replace("{port}", &port.to_string())
                .replace("{cport}", &cport.to_string())
        },
        &format!("--add-scram SCRAM-SHA-512=[name=leadscore,password={PASSWORD}]"),
    );
    std::env::set_var("LEADSCORE_TEST_BROKERS", kafka.bootstrap());
    let n = Names::new("sasl");
    create_topics(&n, 2);
    let ca = dir.join("ca.pem").display().to_string();
    let sasl_brokers = format!("127.0.0.1:{sasl_port}");
    let env = [
        ("LEADSCORE_BROKERS", sasl_brokers.as_str()),
        ("LEADSCORE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        ("LEADSCORE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
        ("LEADSCORE_KAFKA_SASL_USERNAME", "leadscore"),
        ("LEADSCORE_KAFKA_SASL_PASSWORD", PASSWORD),
        ("LEADSCORE_KAFKA_SSL_CA_LOCATION", ca.as_str()),
        ("LEADSCORE_GUARANTEE", "exactly_once"),
    ];
    let mut svc = Service::start(&n, &env);
    svc.wait_ready(Duration::from_secs(90));
    let records = stream(300, 44);
    let ends = produce_records(&n.input, &records);
    wait_all_committed(&n.group, &n.input, &ends, Duration::from_secs(120), &[&svc]);
    assert_replay_exactly(&n, &records, &[&svc]);
    assert!(
        !svc.log_text().contains(PASSWORD),
        "the password is in the log"
    );

    let check = Command::new(env!("CARGO_BIN_EXE_leadscore"))
        .args(["run", "--check"])
        .env("LEADSCORE_RULES", rules_path())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(check.status.success(), "{text}");
    assert!(
        text.contains("sasl.password") && text.contains("***"),
        "{text}"
    );
    assert!(
        !text.contains(PASSWORD),
        "the password is in --check:\n{text}"
    );

    // A wrong password is refused at start, and named as an authentication failure.
    let mut wrong = env;
    wrong[4] = ("LEADSCORE_KAFKA_SASL_PASSWORD", "not-the-password");
    let mut bad = Service::start(&n, &wrong);
    let status = bad.child.wait().unwrap();
    assert!(!status.success());
    let log = bad.log_text();
    assert!(log.to_lowercase().contains("authentication"), "{log}");
    assert!(!log.contains("not-the-password"), "{log}");
}
