//! Location matching and URI normalisation: the pure work done for every request before
//! any file or socket is touched.

use criterion::{black_box, criterion_group, criterion_main, Criterion};

use portico::routing::locations::{LocationIndex, Matcher};
use portico::uri::{normalize_path, split_target};

fn index(specs: &[String]) -> LocationIndex {
    let matchers: Vec<Matcher> = specs.iter().map(|s| Matcher::parse(s).expect("valid match")).collect();
    LocationIndex::build(&matchers).expect("no duplicates")
}

fn flaskbb_site() -> LocationIndex {
    let specs = ["/", "/static", "~ ^/_themes/([^/]+)/(.*)$", "/robots.txt", "@flaskbb"];
    index(&specs.map(String::from))
}

/// A bigger site: 40 prefixes, 10 regexes, a few exact matches.
fn large_site() -> LocationIndex {
    let mut specs = vec!["/".to_string(), "= /favicon.ico".to_string(), "= /health".to_string()];
    for i in 0..40 {
        specs.push(format!("/section{i}/"));
    }
    for i in 0..10 {
        specs.push(format!("~ ^/api/v{i}/(users|posts)/([0-9]+)$"));
    }
    specs.push("~* \\.(png|jpg|gif|css|js)$".to_string());
    index(&specs)
}

fn bench_locations(c: &mut Criterion) {
    let site = flaskbb_site();
    let mut g = c.benchmark_group("locations/flaskbb");
    for uri in
        ["/", "/static/css/styles.css", "/_themes/aurora/css/styles.css", "/robots.txt", "/topic/12-hello"]
    {
        g.bench_function(uri, |b| b.iter(|| site.find(black_box(uri.as_bytes()))));
    }
    g.finish();

    let site = large_site();
    let mut g = c.benchmark_group("locations/large");
    for uri in ["/health", "/section39/page", "/api/v9/users/42", "/img/logo.png", "/nothing/here"] {
        g.bench_function(uri, |b| b.iter(|| site.find(black_box(uri.as_bytes()))));
    }
    g.finish();
}

fn bench_uri(c: &mut Criterion) {
    let mut g = c.benchmark_group("uri");
    let mut out = Vec::with_capacity(256);
    for target in ["/static/css/styles.css?v=3", "/recu//a%20b/./c/../d%2Fe%3Fnot-query?q=%20+1"] {
        g.bench_function(target, |b| {
            b.iter(|| {
                let t = split_target(black_box(target.as_bytes())).expect("valid target");
                normalize_path(t.raw_path, &mut out).expect("normalisable");
                black_box(&out);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_locations, bench_uri);
criterion_main!(benches);
