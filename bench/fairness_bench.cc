// Fairness under a flood: one tenant sends 10x the rate of three steady tenants, all on one engine.
// Writes per-tenant throughput and latency per time window as CSV and as an SVG chart.
//
// usage: fairness_bench [--seconds 20] [--rate 150] [--out bench/results/fairness]
//   rate: requests/s of each steady tenant; the flooder sends 10x (enough to saturate the engine). Each request: a 16-token
//   prompt, 32 new tokens (EOS ignored), on the demo model.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "app/demo_model.h"
#include "engine/engine.h"

using namespace quilt;
using Clock = std::chrono::steady_clock;

namespace {

struct Sample {
  std::string tenant;
  double submitted = 0;  // seconds since start
  double first_token = -1;
  double finished = -1;
  int tokens = 0;
};

const char* kTenants[] = {"flood", "steady-1", "steady-2", "steady-3"};
const char* kColors[] = {"#d62728", "#1f77b4", "#2ca02c", "#9467bd"};

// One polyline chart: x = window start (s), y = value per tenant.
void svg_chart(std::ofstream& out, double x0, double y0, double w, double h, const std::string& title,
               const std::map<std::string, std::vector<double>>& series, double window) {
  double ymax = 1e-9;
  size_t n = 0;
  for (const auto& [_, v] : series) {
    for (double y : v) ymax = std::max(ymax, y);
    n = std::max(n, v.size());
  }
  out << "<text x='" << x0 << "' y='" << y0 - 8 << "' font-size='14'>" << title << " (max "
      << static_cast<int>(ymax) << ")</text>\n";
  out << "<rect x='" << x0 << "' y='" << y0 << "' width='" << w << "' height='" << h
      << "' fill='none' stroke='#999'/>\n";
  int i = 0;
  for (const char* t : kTenants) {
    auto it = series.find(t);
    if (it == series.end()) continue;
    out << "<polyline fill='none' stroke='" << kColors[i++] << "' stroke-width='2' points='";
    for (size_t k = 0; k < it->second.size(); ++k) {
      const double x = x0 + w * (static_cast<double>(k) + 0.5) / std::max<size_t>(n, 1);
      const double y = y0 + h - h * it->second[k] / ymax;
      out << x << ',' << y << ' ';
    }
    out << "'/>\n";
  }
  out << "<text x='" << x0 << "' y='" << y0 + h + 16 << "' font-size='11'>0 s</text>";
  out << "<text x='" << x0 + w - 30 << "' y='" << y0 + h + 16 << "' font-size='11'>" << n * window
      << " s</text>\n";
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 20, rate = 150;
  std::string out_prefix = "bench/results/fairness";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--seconds") seconds = std::stod(v);
    else if (k == "--rate") rate = std::stod(v);
    else if (k == "--out") out_prefix = v;
  }
  engine::EngineOptions opt;
  opt.max_running = 16;  // a small engine, so that the flood really saturates it
  opt.max_step_tokens = 128;
  auto eng = engine::Engine::create(app::demo_model_dir(), opt);
  if (!eng.ok()) {
    std::fprintf(stderr, "%s\n", eng.status().to_string().c_str());
    return 1;
  }
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Sample> samples;
  size_t outstanding = 0;
  const auto start = Clock::now();
  auto since = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };

  // Poisson arrivals per tenant, merged into one timeline.
  std::mt19937_64 rng(7);
  std::vector<std::pair<double, int>> arrivals;
  for (int t = 0; t < 4; ++t) {
    std::exponential_distribution<double> gap(t == 0 ? rate * 10 : rate);
    for (double at = gap(rng); at < seconds; at += gap(rng)) arrivals.push_back({at, t});
  }
  std::sort(arrivals.begin(), arrivals.end());
  samples.reserve(arrivals.size());
  uint64_t id = 0;
  for (const auto& [at, t] : arrivals) {
    std::this_thread::sleep_until(start + std::chrono::duration<double>(at));
    size_t index;
    {
      std::lock_guard lock(mu);
      index = samples.size();
      samples.push_back({kTenants[t], since()});
      ++outstanding;
    }
    engine::Request r;
    r.id = id++;
    r.tenant = kTenants[t];
    for (int k = 0; k < 16; ++k) r.prompt.push_back(5 + (k * 7 + static_cast<int>(id) * 13) % 400);
    r.sampling.max_tokens = 32;
    r.sampling.ignore_eos = true;
    r.on_event = [&, index](const engine::TokenEvent& ev) {
      std::lock_guard lock(mu);
      Sample& s = samples[index];
      if (ev.token) {
        if (s.first_token < 0) s.first_token = since();
        ++s.tokens;
      }
      if (ev.finished) {
        s.finished = since();
        if (--outstanding == 0) cv.notify_all();
      }
    };
    if (Status st = (*eng)->submit(std::move(r)); !st.ok()) {
      std::lock_guard lock(mu);
      samples[index].finished = since();
      --outstanding;
    }
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return outstanding == 0; });
  }

  // Per window: tokens/s and mean time to first token per tenant.
  const double window = 1.0;
  const size_t windows = static_cast<size_t>(since() / window) + 1;
  std::map<std::string, std::vector<double>> tps, ttft_sum, ttft_n;
  for (const char* t : kTenants) {
    tps[t].assign(windows, 0);
    ttft_sum[t].assign(windows, 0);
    ttft_n[t].assign(windows, 0);
  }
  for (const Sample& s : samples) {
    if (s.finished < 0) continue;
    tps[s.tenant][static_cast<size_t>(s.finished / window)] += s.tokens / window;
    if (s.first_token >= 0) {
      const size_t w = static_cast<size_t>(s.submitted / window);
      ttft_sum[s.tenant][w] += s.first_token - s.submitted;
      ttft_n[s.tenant][w] += 1;
    }
  }
  std::map<std::string, std::vector<double>> ttft_ms;
  std::ofstream csv(out_prefix + ".csv");
  csv << "window_start_s,tenant,tokens_per_s,mean_ttft_ms,requests_started\n";
  for (const char* t : kTenants) {
    ttft_ms[t].assign(windows, 0);
    for (size_t w = 0; w < windows; ++w) {
      ttft_ms[t][w] = ttft_n[t][w] > 0 ? 1000 * ttft_sum[t][w] / ttft_n[t][w] : 0;
      csv << w * window << ',' << t << ',' << tps[t][w] << ',' << ttft_ms[t][w] << ',' << ttft_n[t][w] << '\n';
    }
  }
  std::ofstream svg(out_prefix + ".svg");
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='760' height='560' font-family='sans-serif'>\n";
  svg << "<rect width='100%' height='100%' fill='white'/>\n";
  svg_chart(svg, 60, 40, 640, 200, "tokens/s per tenant", tps, window);
  svg_chart(svg, 60, 300, 640, 200, "mean time to first token (ms) by arrival", ttft_ms, window);
  for (int i = 0; i < 4; ++i) {
    svg << "<text x='" << 60 + 160 * i << "' y='545' font-size='13' fill='" << kColors[i] << "'>" << kTenants[i]
        << "</text>\n";
  }
  svg << "</svg>\n";

  // Summary: totals and p99 time to first token per tenant.
  for (const char* t : kTenants) {
    std::vector<double> ttfts;
    double tokens = 0;
    for (const Sample& s : samples) {
      if (s.tenant != t) continue;
      tokens += s.tokens;
      if (s.first_token >= 0) ttfts.push_back(s.first_token - s.submitted);
    }
    std::sort(ttfts.begin(), ttfts.end());
    const double p50 = ttfts.empty() ? 0 : ttfts[ttfts.size() / 2];
    const double p99 = ttfts.empty() ? 0 : ttfts[std::min(ttfts.size() - 1, ttfts.size() * 99 / 100)];
    std::printf("| %s | %zu | %.0f | %.1f | %.1f |\n", t, ttfts.size(), tokens / since(), p50 * 1e3, p99 * 1e3);
  }
  return 0;
}
