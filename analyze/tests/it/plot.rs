//! `analyze plot`: the picture names every group it draws with the counts `analyze stats`
//! gives, the filters and --by apply, and PNG without its converter is a clear error.

use crate::common::{Run, analyze, command, ok, run};

/// (label, count) of the groups in `analyze stats --format csv` (first columns: key, count).
fn stats_groups(args: &[&str]) -> Vec<(String, u64)> {
    let mut a = vec!["stats"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--format", "csv"]);
    let csv = ok(&a);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let count_col = header.iter().position(|h| *h == "count").unwrap();
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (
                cells[..count_col].join(" "),
                cells[count_col].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn every_group_is_labelled_with_its_count() {
    let out = std::env::temp_dir().join(format!("analyze-plot-{}.svg", std::process::id()));
    let src = "samples/synthetic-mixed.gsot";
    let said = ok(&[
        "plot",
        src,
        "--by",
        "comm",
        "--top",
        "5",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(said.contains("plotted 5000 calls in 6 groups"), "{said}");
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let groups = stats_groups(&[src, "--by", "comm"]);
    for (label, count) in &groups[..5] {
        // Each shown group is named twice: at its timeline line and at its histogram row.
        let named = svg.matches(&format!(">{label}</text>")).count();
        assert_eq!(named, 2, "{label}");
        assert!(
            svg.contains(&format!(">{count} calls</text>")),
            "{label} {count}"
        );
    }
    let rest: u64 = groups[5..].iter().map(|g| g.1).sum();
    assert!(svg.contains(&format!(">other ({rest} calls)</text>")));
    // A group beyond --top has no row of its own.
    assert!(!svg.contains(&format!(">{}</text>", groups[5].0)));
    let _ = std::fs::remove_file(&out);
}

#[test]
fn filters_and_by_apply() {
    let out = std::env::temp_dir().join(format!("analyze-plot-f-{}.svg", std::process::id()));
    let src = "samples/synthetic-mixed.gsot";
    let filters = ["--comm", "nginx", "--errors"];
    let mut args = vec![
        "plot",
        src,
        "--by",
        "comm,errno",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(&filters);
    ok(&args);
    let svg = std::fs::read_to_string(&out).unwrap();
    let mut sargs = vec![src, "--by", "comm,errno"];
    sargs.extend_from_slice(&filters);
    let groups = stats_groups(&sargs);
    assert!(!groups.is_empty());
    let total: u64 = groups.iter().map(|g| g.1).sum();
    assert!(svg.contains(&format!(": {total} calls,")), "title count");
    for (label, count) in &groups {
        assert!(label.starts_with("nginx "), "{label}");
        assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        assert!(svg.contains(&format!(">{count} call")), "{label}");
    }
    assert!(!svg.contains(">envoy"));
    let _ = std::fs::remove_file(&out);
}

#[test]
fn bad_outputs_are_clear_errors() {
    let src = "samples/synthetic-mixed.gsot";
    let Run {
        code, stderr: err, ..
    } = analyze(&["plot", src, "-o", "/tmp/x.jpg"]);
    assert_eq!(code, 2);
    assert!(err.contains(".svg or .png"), "{err}");
    // Without rsvg-convert on PATH, PNG output says what to install.
    let empty = std::env::temp_dir().join(format!("analyze-plot-nopath-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let png = empty.join("x.png");
    let Run {
        code, stderr: err, ..
    } = run(command()
        .args(["plot", src, "-o", png.to_str().unwrap()])
        .env("PATH", &empty));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("rsvg-convert") && err.contains("librsvg2-bin"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
    assert!(!png.exists());
    let _ = std::fs::remove_dir_all(&empty);
}
