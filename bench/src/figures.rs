//! Latency figures over rounds, shared by the node-under-test table
//! (`nut`) and the two-node tables (`suite`): per case, the median
//! [min–max] of each percentile over rounds and the rounds' histograms
//! merged, HdrHistogram interval logs and percentile plots.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::latency::{self, LatencyCase, Percentiles, Spread};
use crate::plot;

/// One latency case of one path, over rounds.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyFigures {
    /// `blocking/low` and so on.
    pub case: String,
    /// Percentiles (µs) per round, summarised.
    pub p50_us: Spread,
    /// 90th percentile.
    pub p90_us: Spread,
    /// 99th percentile.
    pub p99_us: Spread,
    /// 99.9th percentile.
    pub p999_us: Spread,
    /// 99.99th percentile.
    pub p9999_us: Spread,
    /// Largest.
    pub max_us: Spread,
    /// Lost probes, percent.
    pub loss_percent: Spread,
    /// Background stream delivered, percent (100 at low load).
    pub load_delivered_percent: Spread,
    /// All rounds merged.
    pub merged: Percentiles,
}

/// Summarise the latency samples of one path over rounds (`rounds[r][i]`
/// is round r's sample of [`LatencyCase::ALL`]`[i]`): per case, the
/// figures (median [min–max] over rounds) and all rounds' histograms
/// merged. Writes each case's HdrHistogram log to
/// `<out_dir>/<stem>-<case>.hlog` and adds it to `files`.
pub fn summarise_latency(
    stem: &str,
    rounds: &[&[latency::LatencySample]],
    out_dir: &Path,
    files: &mut Vec<String>,
) -> Result<Vec<(LatencyFigures, Histogram<u64>)>> {
    let mut out = Vec::new();
    for (i, case) in LatencyCase::ALL.iter().enumerate() {
        let samples: Vec<&latency::LatencySample> =
            rounds.iter().filter_map(|r| r.get(i)).collect();
        let per_round: Vec<Percentiles> = samples
            .iter()
            .map(|s| Percentiles::of(&s.histogram))
            .collect();
        let pick =
            |f: fn(&Percentiles) -> f64| Spread::of(&per_round.iter().map(f).collect::<Vec<_>>());
        let mut merged =
            Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).context("histogram")?;
        for s in &samples {
            merged.add(&s.histogram).context("merging histograms")?;
        }
        let log = out_dir.join(format!("{stem}-{}.hlog", case.label().replace('/', "-")));
        write_hdr_log(&log, &samples)?;
        files.push(log.display().to_string());
        let figures = LatencyFigures {
            case: case.label(),
            p50_us: pick(|p| p.p50_us),
            p90_us: pick(|p| p.p90_us),
            p99_us: pick(|p| p.p99_us),
            p999_us: pick(|p| p.p999_us),
            p9999_us: pick(|p| p.p9999_us),
            max_us: pick(|p| p.max_us),
            loss_percent: Spread::of(
                &samples
                    .iter()
                    .map(|s| percent(s.sent - s.received.min(s.sent), s.sent))
                    .collect::<Vec<_>>(),
            ),
            load_delivered_percent: Spread::of(
                &samples
                    .iter()
                    .map(|s| {
                        if s.load_sent == 0 {
                            100.0
                        } else {
                            percent(s.load_received, s.load_sent)
                        }
                    })
                    .collect::<Vec<_>>(),
            ),
            merged: Percentiles::of(&merged),
        };
        out.push((figures, merged));
    }
    Ok(out)
}

/// One percentile plot per latency case, a curve per path:
/// `<out_dir>/<stem>-<case>.svg`, titled with `title_suffix`; adds them to
/// `files`.
pub fn write_latency_plots(
    stem: &str,
    title_suffix: &str,
    curves_by_case: &BTreeMap<String, Vec<(String, Histogram<u64>)>>,
    out_dir: &Path,
    files: &mut Vec<String>,
) -> Result<()> {
    for (case, curves) in curves_by_case {
        let svg = out_dir.join(format!("{stem}-{}.svg", case.replace('/', "-")));
        std::fs::write(
            &svg,
            plot::percentile_svg(
                &format!("UDP request/response, {case}{title_suffix}"),
                curves,
            ),
        )
        .with_context(|| format!("writing {}", svg.display()))?;
        files.push(svg.display().to_string());
    }
    Ok(())
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Write the rounds' histograms as an HdrHistogram interval log (V2,
/// compressed), one interval per round, readable by HdrHistogram's tools.
fn write_hdr_log(path: &Path, samples: &[&latency::LatencySample]) -> Result<()> {
    use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
    use hdrhistogram::serialization::V2DeflateSerializer;
    let mut file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut serializer = V2DeflateSerializer::new();
    let start = std::time::SystemTime::now();
    let mut writer = IntervalLogWriterBuilder::new()
        .add_comment("kxdp bench: UDP round-trip times in nanoseconds, one interval per round")
        .with_start_time(start)
        .begin_log_with(&mut file, &mut serializer)
        .with_context(|| format!("writing {}", path.display()))?;
    for (i, s) in samples.iter().enumerate() {
        writer
            .write_histogram(
                &s.histogram,
                Duration::from_secs(i as u64),
                Duration::from_secs(1),
                None,
            )
            .map_err(|e| anyhow::anyhow!("writing {}: {e:?}", path.display()))?;
    }
    Ok(())
}
