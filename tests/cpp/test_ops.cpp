// C++ test of the ops through the PyTorch dispatcher (no Python): values against a direct computation
// in double, the exact zero self-distance, argument errors, knn tie-breaking, and the CPU level that ran
// them (ctest runs this once per level, chosen with AUDIOSIAM_CPU_CAPABILITY).
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>

#include "ops/cpu_dispatch.h"

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  std::cout << (ok ? "ok      " : "FAILED  ") << what << "\n";
  if (!ok) ++failures;
}

at::Tensor pairwise(const at::Tensor& x, const at::Tensor& y, const std::string& metric) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("audiosiam::pairwise_distance", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, c10::string_view)>();
  return op.call(x, y, metric);
}

std::tuple<at::Tensor, at::Tensor> knn(const at::Tensor& q, const at::Tensor& r, int64_t k, const std::string& metric) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("audiosiam::knn", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, int64_t,
                                                                 c10::string_view)>();
  return op.call(q, r, k, metric);
}

}  // namespace

int main() {
  torch::manual_seed(0);
  auto x = torch::randn({37, 19}), y = torch::randn({23, 19});
  auto xd = x.to(torch::kDouble), yd = y.to(torch::kDouble);
  auto diff = xd.unsqueeze(1) - yd.unsqueeze(0);
  auto sq = diff.pow(2).sum(-1);
  const double euclid_err = (pairwise(x, y, "euclidean").to(torch::kDouble) - sq.sqrt()).abs().max().item<double>();
  expect(euclid_err < 1e-5, "euclidean matches the float64 definition (max error " + std::to_string(euclid_err) + ")");
  const double l1_err = (pairwise(x, y, "l1").to(torch::kDouble) - diff.abs().sum(-1)).abs().max().item<double>();
  expect(l1_err < 1e-4, "l1 matches the float64 definition");
  expect(pairwise(x, x, "euclidean").diagonal().abs().max().item<float>() == 0.0f, "self-distance is exactly 0");
  const double cos_err = (pairwise(xd, yd, "cosine") -
                          (1 - torch::mm(torch::nn::functional::normalize(xd, torch::nn::functional::NormalizeFuncOptions().dim(1)),
                                         torch::nn::functional::normalize(yd, torch::nn::functional::NormalizeFuncOptions().dim(1)).t())))
                             .abs().max().item<double>();
  expect(cos_err < 1e-12, "cosine matches in float64");

  auto ref = torch::zeros({4, 2});
  ref[1] = 1.0;  // rows 0, 2 and 3 tie at distance 0 from the query
  auto [dist, idx] = knn(torch::zeros({1, 2}), ref, 3, "euclidean");
  expect(idx[0][0].item<int64_t>() == 0 && idx[0][1].item<int64_t>() == 2 && idx[0][2].item<int64_t>() == 3,
         "knn breaks ties by the lower index");

  bool raised = false;
  try {
    pairwise(x, torch::randn({3, 4}), "euclidean");
  } catch (const c10::Error& e) {
    raised = std::string(e.what()).find("argument 'y'") != std::string::npos;
  }
  expect(raised, "mismatched dim names the argument");
  raised = false;
  try {
    pairwise(x, y, "chebyshev");
  } catch (const c10::Error& e) {
    raised = std::string(e.what()).find("'metric'") != std::string::npos;
  }
  expect(raised, "unknown metric names the argument");

  // The level asked for ran, or, where this CPU lacks it, the highest one it has.
  const std::string level = audiosiam::cpu::capability();
  const auto levels = audiosiam::cpu::capabilities();
  const char* env = std::getenv("AUDIOSIAM_CPU_CAPABILITY");
  const std::string asked = env && *env ? env : levels.back();
  const bool has_asked = std::find(levels.begin(), levels.end(), asked) != levels.end();
  expect(level == (has_asked ? asked : levels.back()), "the kernels ran at CPU level " + level + " (asked: " + asked + ")");

  std::cout << (failures ? "FAILED" : "all passed") << "\n";
  return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
