use super::*;

fn samples(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("%% ") {
            out.push((name.to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

fn scanner() -> Scanner {
    Scanner::new(vec![KnownSecret { value: "Kn0wn-Bus-Pass".into(), label: "the bus password (BUS_PASS)".into() }])
}

#[test]
fn every_true_positive_in_the_corpus_is_caught() {
    let s = scanner();
    let corpus = samples(include_str!("../../tests/fixtures/secrets/true_positives.txt"));
    assert!(corpus.len() >= 40, "corpus has {} samples", corpus.len());
    let missed: Vec<&str> =
        corpus.iter().filter(|(_, t)| s.scan_text(t, "sample").is_empty()).map(|(n, _)| n.as_str()).collect();
    println!("secret scanner: {}/{} true positives caught", corpus.len() - missed.len(), corpus.len());
    assert!(missed.is_empty(), "missed: {missed:#?}");
}

#[test]
fn lookalikes_false_positive_rate_is_reported_and_low() {
    let s = scanner();
    let corpus = samples(include_str!("../../tests/fixtures/secrets/lookalikes.txt"));
    assert!(corpus.len() >= 40, "corpus has {} samples", corpus.len());
    let flagged: Vec<String> = corpus
        .iter()
        .filter_map(|(n, t)| {
            let f = s.scan_text(t, "sample");
            (!f.is_empty()).then(|| format!("{n}: {}", f.iter().map(|f| f.kind.clone()).collect::<Vec<_>>().join(", ")))
        })
        .collect();
    let rate = flagged.len() as f64 / corpus.len() as f64;
    println!(
        "secret scanner: false-positive rate {}/{} = {:.1}% on lookalikes; flagged: {flagged:#?}",
        flagged.len(),
        corpus.len(),
        rate * 100.0
    );
    assert!(rate <= 0.05, "false-positive rate {:.1}% over 5%: {flagged:#?}", rate * 100.0);
}

#[test]
fn findings_name_the_kind_and_line_but_never_the_value() {
    let s = scanner();
    let text = "fine line\nexport GH_TOKEN=ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5\nping Kn0wn-Bus-Pass\n";
    let f = s.scan_text(text, "the message text");
    assert!(f.iter().any(|f| f.line == 2 && f.kind == "GitHub token"), "{f:?}");
    assert!(f.iter().any(|f| f.line == 3 && f.kind.contains("bus password")), "{f:?}");
    let msg = refusal(&f);
    assert!(msg.contains("the message text line 2") && msg.contains("--allow-secret"), "{msg}");
    assert!(!msg.contains("ghp_aB3") && !msg.contains("Kn0wn-Bus-Pass"), "{msg}");
    let json = serde_json::to_string(&f).unwrap();
    assert!(!json.contains("ghp_aB3") && !json.contains("Kn0wn-Bus-Pass"), "{json}");
}

#[test]
fn files_are_scanned_line_by_line_and_binaries_skipped() {
    let d = tempfile::tempdir().unwrap();
    let text = d.path().join("notes.txt");
    let key = format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW".repeat(3)
    );
    std::fs::write(&text, format!("line one\n{key}")).unwrap();
    match scanner().scan_file(&text, "--file notes.txt").unwrap() {
        FileScan::Text(f) => {
            assert_eq!(f, vec![Finding { kind: "private key".into(), source: "--file notes.txt".into(), line: 2 }])
        }
        FileScan::Binary => panic!("text seen as binary"),
    }
    let bin = d.path().join("shot.png");
    std::fs::write(&bin, [&b"\x89PNG\r\n\x1a\n\0\0"[..], key.as_bytes()].concat()).unwrap();
    assert_eq!(scanner().scan_file(&bin, "--file shot.png").unwrap(), FileScan::Binary);
    // invalid UTF-8 in a text file is read lossily, not an error
    std::fs::write(&text, b"caf\xe9 \xff\nDB_PASSWORD=S3cr3tP4ss!\n").unwrap();
    assert!(matches!(scanner().scan_file(&text, "f").unwrap(), FileScan::Text(f) if f.len() == 1 && f[0].line == 2));
}

#[test]
fn short_known_values_are_ignored_and_duplicates_collapse() {
    let s = Scanner::new(vec![
        KnownSecret { value: "abc".into(), label: "short".into() },
        KnownSecret { value: "long-enough-1".into(), label: "a".into() },
        KnownSecret { value: "long-enough-1".into(), label: "b".into() },
    ]);
    assert!(s.scan_text("abc abc", "t").is_empty());
    assert_eq!(s.scan_text("x long-enough-1 y", "t").len(), 1);
}

#[test]
fn every_format_of_issue_14_is_caught_and_none_of_its_lookalikes() {
    let s = scanner();
    let formats = samples(include_str!("../../tests/fixtures/secrets/formats.txt"));
    assert!(formats.len() >= 20, "{} samples", formats.len());
    let missed: Vec<&str> =
        formats.iter().filter(|(_, t)| s.scan_text(t, "sample").is_empty()).map(|(n, _)| n.as_str()).collect();
    assert!(missed.is_empty(), "missed: {missed:#?}");
    let lookalikes = samples(include_str!("../../tests/fixtures/secrets/formats_lookalikes.txt"));
    assert!(lookalikes.len() >= 20, "{} lookalikes", lookalikes.len());
    let flagged: Vec<String> = lookalikes
        .iter()
        .filter_map(|(n, t)| {
            let f = s.scan_text(t, "sample");
            (!f.is_empty()).then(|| format!("{n}: {}", f.iter().map(|f| f.kind.clone()).collect::<Vec<_>>().join(", ")))
        })
        .collect();
    assert!(flagged.is_empty(), "lookalikes flagged: {flagged:#?}");
}

#[test]
fn utf16_files_and_archive_members_are_scanned() {
    use std::io::Write;
    let s = scanner();
    let dir = tempfile::tempdir().unwrap();
    let secret = "export OPENAI_API_KEY=sk-proj-oMNlXM1EJ9ykZ9gqWWVC84ftD3nSaef5flxaBAGDs6SwHxTk\n";
    let utf16: Vec<u8> = [0xff, 0xfe].into_iter().chain(secret.encode_utf16().flat_map(u16::to_le_bytes)).collect();
    std::fs::write(dir.path().join("a.env"), &utf16).unwrap();
    let mut z = zip::ZipWriter::new(std::fs::File::create(dir.path().join("a.zip")).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    z.start_file("readme.txt", opts).unwrap();
    z.write_all(b"nothing here\n").unwrap();
    z.start_file("conf/.env", opts).unwrap();
    z.write_all(&utf16).unwrap();
    z.finish().unwrap();
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(dir.path().join("a.tar.gz")).unwrap(),
        flate2::Compression::default(),
    );
    let mut t = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_size(secret.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    t.append_data(&mut h, "deep/.env", secret.as_bytes()).unwrap();
    t.into_inner().unwrap().finish().unwrap();
    for (name, member) in [("a.env", None), ("a.zip", Some("conf/.env")), ("a.tar.gz", Some("deep/.env"))] {
        let FileScan::Text(f) = s.scan_file(&dir.path().join(name), name).unwrap() else {
            panic!("{name} not scanned")
        };
        assert!(f.iter().any(|f| f.kind == "OpenAI API key"), "{name}: {f:?}");
        if let Some(m) = member {
            assert!(f.iter().all(|f| f.source.contains(m)), "{name}: findings name the member: {f:?}");
        }
    }
}

#[test]
fn the_rule_set_picks_exactly_the_rules_that_match_each_line() {
    let corpus = [
        include_str!("../../tests/fixtures/secrets/true_positives.txt"),
        include_str!("../../tests/fixtures/secrets/lookalikes.txt"),
        include_str!("../../tests/fixtures/secrets/formats.txt"),
        include_str!("../../tests/fixtures/secrets/formats_lookalikes.txt"),
    ];
    let mut lines_with_a_rule = 0;
    for line in corpus.iter().flat_map(|t| t.lines()) {
        let by_set: Vec<usize> = rules::RULE_SET.matches(line).iter().collect();
        let by_rule: Vec<usize> = (0..rules::RULES.len()).filter(|&i| rules::RULES[i].re().is_match(line)).collect();
        assert_eq!(by_set, by_rule, "line {line:?}");
        lines_with_a_rule += usize::from(!by_rule.is_empty());
    }
    assert!(lines_with_a_rule >= 30, "the corpus exercises the rules: {lines_with_a_rule} lines match one");
}
