use super::*;

fn engine() -> EngineId {
    EngineId {
        profile: "sluice-engine-1".into(),
        wasmtime: "48.0.8".into(),
    }
}

fn expect(trusted: Vec<PublicKey>) -> Expectations {
    Expectations {
        engine: engine(),
        arch: "aarch64".into(),
        os: "linux".into(),
        trusted,
    }
}

fn manifest() -> Manifest {
    Manifest {
        format: FORMAT.into(),
        created_by: "test".into(),
        target: "aarch64-unknown-linux-gnu".into(),
        engine: engine(),
        compatibility_hash: "0123".into(),
        model: ModelEntry {
            name: "m".into(),
            version: 2,
            reference: "m@production".into(),
            card: "model/card.json".into(),
            onnx: "model/model.onnx".into(),
        },
        components: vec![BundledComponent {
            name: "std:transform".into(),
            role: ComponentRole::Transform,
            step: None,
            digest: Digest::of(b"wasm"),
            size: 4,
            code: "components/t.cwasm".into(),
        }],
        selftest: None,
        steps: Vec::new(),
        files: BTreeMap::new(),
    }
}

fn bundle(key: Option<&SecretKey>) -> Vec<u8> {
    let mut w = BundleWriter::new(manifest());
    w.add("model/card.json", b"{\"card\":1}".to_vec());
    w.add("model/model.onnx", vec![7; 1000]);
    w.add("components/t.cwasm", vec![9; 3000]);
    w.finish(key)
}

/// The offset of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

#[test]
fn a_bundle_round_trips_with_every_file_checked() {
    let bytes = bundle(None);
    let b = Bundle::open(&bytes, &expect(vec![])).unwrap();
    assert_eq!(b.manifest().model.version, 2);
    assert_eq!(b.file("model/model.onnx").unwrap(), &[7u8; 1000][..]);
    assert_eq!(b.manifest().files.len(), 3);
    assert!(b.signed_by().is_none());
    // Deterministic: the same contents give the same bytes.
    assert_eq!(bundle(None), bytes);
}

#[test]
fn one_changed_byte_anywhere_is_refused_with_what_was_changed() {
    let bytes = bundle(None);
    // In the ONNX graph, in the component's code, in the manifest.
    let onnx = find(&bytes, &[7; 1000]) + 500;
    let code = find(&bytes, &[9; 3000]) + 10;
    let manifest = find(&bytes, b"\"reference\"") + 3;
    for (at, expected) in [
        (
            onnx,
            "`model/model.onnx` in the bundle was modified or damaged",
        ),
        (
            code,
            "`components/t.cwasm` in the bundle was modified or damaged",
        ),
        (manifest, "the bundle's manifest was modified or damaged"),
    ] {
        let mut tampered = bytes.clone();
        tampered[at] ^= 1;
        let err = Bundle::open(&tampered, &expect(vec![])).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
}

#[test]
fn a_signed_bundle_is_accepted_by_its_key_only() {
    let key = SecretKey::generate().unwrap();
    let other = SecretKey::generate().unwrap();
    let bytes = bundle(Some(&key));
    let b = Bundle::open(&bytes, &expect(vec![other.public(), key.public()])).unwrap();
    assert_eq!(b.signed_by(), Some(&key.public()));

    let err = Bundle::open(&bytes, &expect(vec![other.public()])).unwrap_err();
    assert!(matches!(err, BundleError::BadSignature { .. }), "{err}");
    assert!(err.to_string().contains(&other.public().id()));

    let err = Bundle::open(&bundle(None), &expect(vec![key.public()])).unwrap_err();
    assert!(matches!(err, BundleError::Unsigned { .. }), "{err}");
    assert!(err.to_string().contains("sluice bundle --sign KEY"));
}

#[test]
fn a_manifest_rewritten_with_a_matching_digest_fails_the_signature() {
    // Someone who edits the manifest can recompute its digest, but cannot sign.
    let key = SecretKey::generate().unwrap();
    let mut w = BundleWriter::new(manifest());
    w.add("model/card.json", b"{}".to_vec());
    w.add("model/model.onnx", vec![1]);
    w.add("components/t.cwasm", vec![2]);
    let mut m = w.manifest_mut().clone();
    m.model.reference = "m@evil".into();
    let honest = w.finish(Some(&key));
    let b = Bundle::open(&honest, &expect(vec![key.public()])).unwrap();
    let mut files: Vec<(String, Vec<u8>)> = vec![];
    for path in m.files.keys() {
        files.push((path.clone(), b.file(path).unwrap().to_vec()));
    }
    let forged_manifest = serde_json::to_vec_pretty(&m).unwrap();
    let digest = Digest::of(&forged_manifest).to_string().into_bytes();
    let sig = container::read(&honest).unwrap()[MANIFEST_SIGNATURE].clone();
    let mut entries: Vec<(&str, &[u8])> = vec![
        (MANIFEST, &forged_manifest),
        (MANIFEST_DIGEST, &digest),
        (MANIFEST_SIGNATURE, &sig),
    ];
    for (p, bytes) in &files {
        entries.push((p, bytes));
    }
    let forged = container::write(&entries);
    // Unsigned checks pass (the digest was recomputed) …
    assert!(Bundle::open(&forged, &expect(vec![])).is_ok());
    // … the signature does not.
    let err = Bundle::open(&forged, &expect(vec![key.public()])).unwrap_err();
    assert!(matches!(err, BundleError::BadSignature { .. }), "{err}");
}

#[test]
fn another_target_or_engine_is_refused_with_what_to_rebuild() {
    let bytes = bundle(None);
    let mut x86 = expect(vec![]);
    x86.arch = "x86_64".into();
    let err = Bundle::open(&bytes, &x86).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the bundle was compiled for aarch64-unknown-linux-gnu, and this device is x86_64-linux: \
         rebuild it with `sluice bundle … --target x86_64-unknown-linux-gnu`"
    );
    let mut newer = expect(vec![]);
    newer.engine.wasmtime = "49.0.0".into();
    let err = Bundle::open(&bytes, &newer).unwrap_err();
    assert!(matches!(err, BundleError::Engine { .. }));
    assert!(err.to_string().contains("wasmtime 48.0.8"), "{err}");
    assert!(err.to_string().contains("wasmtime 49.0.0"), "{err}");
}

#[test]
fn files_the_manifest_does_not_list_and_non_files_are_refused() {
    let mut w = BundleWriter::new(manifest());
    w.add("model/card.json", b"{}".to_vec());
    w.add("model/model.onnx", vec![1]);
    w.add("components/t.cwasm", vec![2]);
    let b = Bundle::open(&w.finish(None), &expect(vec![])).unwrap();
    let m = serde_json::to_vec_pretty(b.manifest()).unwrap();
    let d = Digest::of(&m).to_string().into_bytes();
    let extra = container::write(&[
        (MANIFEST, &m),
        (MANIFEST_DIGEST, &d),
        ("model/card.json", b"{}"),
        ("model/model.onnx", &[1]),
        ("components/t.cwasm", &[2]),
        ("components/evil.cwasm", &[3]),
    ]);
    let err = Bundle::open(&extra, &expect(vec![])).unwrap_err();
    assert!(
        matches!(err, BundleError::Unlisted(ref p) if p == "components/evil.cwasm"),
        "{err}"
    );

    let err = Bundle::open(b"not a tar at all, just text", &expect(vec![])).unwrap_err();
    assert!(matches!(err, BundleError::Container(_)), "{err}");
    let err = Bundle::open(&[], &expect(vec![])).unwrap_err();
    assert!(matches!(err, BundleError::Container(_)), "{err}");
}

#[test]
fn keys_round_trip_through_pem_files_openssl_reads() {
    let dir = std::env::temp_dir().join(format!("sluice-bundle-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = SecretKey::generate().unwrap();
    key.write(&dir.join("k.pem")).unwrap();
    key.public().write(&dir.join("k.pub")).unwrap();
    let text = std::fs::read_to_string(dir.join("k.pem")).unwrap();
    assert!(
        text.starts_with("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI"),
        "{text}"
    );
    let again = SecretKey::read(&dir.join("k.pem")).unwrap();
    assert_eq!(again.public(), key.public());
    assert_eq!(PublicKey::read(&dir.join("k.pub")).unwrap(), key.public());
    // A private key is never overwritten, and not read as a public one.
    assert!(key.write(&dir.join("k.pem")).is_err());
    let err = PublicKey::read(&dir.join("k.pem")).unwrap_err();
    assert!(err.to_string().contains("BEGIN PUBLIC KEY"), "{err}");
    // A key pair OpenSSL 3.0 wrote (`openssl genpkey -algorithm ed25519`,
    // `openssl pkey -pubout`): the same key both ways.
    std::fs::write(
        dir.join("openssl.pem"),
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIEqitI+7XWrox4Ngiq5yMIAnkgKMY4RbVHlvWNJj0HsR\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("openssl.pub"),
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA3p1EDi21m6LY8Ot/TJ96tmsdIgEL6rNurzcO2zdUiLU=\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let k = SecretKey::read(&dir.join("openssl.pem")).unwrap();
    assert_eq!(
        PublicKey::read(&dir.join("openssl.pub")).unwrap(),
        k.public()
    );
    assert!(k.public().verifies(b"x", &k.sign(b"x")));
    assert!(!k.public().verifies(b"y", &k.sign(b"x")));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_steps_frozen_input_must_be_a_file_of_the_bundle_and_round_trips() {
    let step = BundledStep {
        name: "validate".into(),
        params: BTreeMap::from([(
            "fail-on-drift".to_string(),
            serde_json::json!({"type": "boolean", "value": false}),
        )]),
        inputs: vec![
            StepInput {
                port: "statistics".into(),
                kind: "statistics".into(),
                from: InputSource::Step {
                    step: "statistics".into(),
                    port: "statistics".into(),
                },
            },
            StepInput {
                port: "schema".into(),
                kind: "schema".into(),
                from: InputSource::Bundled {
                    path: "inputs/schema".into(),
                    origin: "run-1/schema/schema".into(),
                },
            },
        ],
        memory: 1 << 30,
        time_ms: 600_000,
        output: 1 << 30,
        real_clock: false,
    };
    let write = |with_file: bool| {
        let mut m = manifest();
        m.steps = vec![step.clone()];
        let mut w = BundleWriter::new(m);
        w.add("model/card.json", b"{}".to_vec());
        w.add("model/model.onnx", vec![7; 10]);
        w.add("components/t.cwasm", vec![9; 30]);
        if with_file {
            w.add("inputs/schema", b"{\"columns\":[]}".to_vec());
        }
        w.finish(None)
    };
    let b = Bundle::open(&write(true), &expect(vec![])).unwrap();
    assert_eq!(b.manifest().steps, vec![step.clone()]);
    assert_eq!(b.file("inputs/schema").unwrap(), b"{\"columns\":[]}");
    // The manifest names the source of each input in its own words.
    let text = serde_json::to_value(&step).unwrap();
    assert_eq!(text["inputs"][1]["from"]["source"], "bundled");
    assert_eq!(text["inputs"][0]["from"]["source"], "step");
    assert!(text.get("real_clock").is_none());
    match Bundle::open(&write(false), &expect(vec![])) {
        Err(BundleError::Missing(path)) => assert_eq!(path, "inputs/schema"),
        other => panic!("expected a missing file, got {other:?}"),
    }
}
