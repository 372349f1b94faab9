#include "common/decision/exits_rl.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <random>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace splitinfer::decision {
namespace {

constexpr int kStateSize = 4;

struct MlpImpl : torch::nn::Module {
  MlpImpl(int in, int hidden, int out, bool tanh_out) : tanh_out_(tanh_out) {
    l1 = register_module("l1", torch::nn::Linear(in, hidden));
    l2 = register_module("l2", torch::nn::Linear(hidden, hidden));
    l3 = register_module("l3", torch::nn::Linear(hidden, out));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(l1->forward(x));
    x = torch::relu(l2->forward(x));
    x = l3->forward(x);
    return tanh_out_ ? torch::tanh(x) : x;
  }
  bool tanh_out_;
  torch::nn::Linear l1{nullptr}, l2{nullptr}, l3{nullptr};
};
TORCH_MODULE(Mlp);

void CopyParams(Mlp& from, Mlp& to) {
  torch::NoGradGuard g;
  auto src = from->parameters();
  auto dst = to->parameters();
  for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
}

void SoftUpdate(Mlp& from, Mlp& to, double tau) {
  torch::NoGradGuard g;
  auto src = from->parameters();
  auto dst = to->parameters();
  for (size_t i = 0; i < src.size(); ++i) dst[i].mul_(1.0 - tau).add_(src[i], tau);
}

// Initializes every Linear like LibTorch's default (weights and biases uniform in
// +-1/sqrt(fan_in)) from a private generator, so that training neither reads nor moves the global
// generator.
void InitFrom(Mlp& m, at::Generator& gen) {
  torch::NoGradGuard g;
  for (torch::nn::Linear* l : {&m->l1, &m->l2, &m->l3}) {
    const double bound = 1.0 / std::sqrt(static_cast<double>((*l)->weight.size(1)));
    (*l)->weight.uniform_(-bound, bound, gen);
    (*l)->bias.uniform_(-bound, bound, gen);
  }
}

// One intra-op thread while training (bitwise reproducible reductions); restores the count.
class ScopedOneThread {
 public:
  ScopedOneThread() : saved_(at::get_num_threads()) { at::set_num_threads(1); }
  ~ScopedOneThread() { at::set_num_threads(saved_); }
  ScopedOneThread(const ScopedOneThread&) = delete;
  ScopedOneThread& operator=(const ScopedOneThread&) = delete;

 private:
  int saved_;
};

// Builds the four networks with the global generator's state saved and restored around the
// modules' own default initialization (which draws from it), then re-initializes them from
// `gen`.
struct Nets {
  Mlp actor{nullptr}, critic{nullptr}, actor_t{nullptr}, critic_t{nullptr};
};
Nets MakeNets(int hidden, int action_size, at::Generator& gen) {
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  at::Generator global = at::detail::getDefaultCPUGenerator();
  at::Tensor saved;
  {
    std::lock_guard<std::mutex> g(global.mutex());
    saved = global.get_state();
  }
  Nets n;
  n.actor = Mlp(kStateSize, hidden, action_size, true);
  n.critic = Mlp(kStateSize + action_size, hidden, 1, false);
  n.actor_t = Mlp(kStateSize, hidden, action_size, true);
  n.critic_t = Mlp(kStateSize + action_size, hidden, 1, false);
  {
    std::lock_guard<std::mutex> g(global.mutex());
    global.set_state(saved);
  }
  InitFrom(n.actor, gen);
  InitFrom(n.critic, gen);
  return n;
}

EigenMlp ToEigen(Mlp& m) {
  EigenMlp e;
  for (torch::nn::Linear* l : {&m->l1, &m->l2, &m->l3}) {
    torch::Tensor w = (*l)->weight.detach().contiguous().to(torch::kFloat32);
    torch::Tensor b = (*l)->bias.detach().contiguous().to(torch::kFloat32);
    const int out = static_cast<int>(w.size(0)), in = static_cast<int>(w.size(1));
    Eigen::MatrixXf wm(out, in);
    const float* wp = w.data_ptr<float>();
    for (int r = 0; r < out; ++r)
      for (int c = 0; c < in; ++c) wm(r, c) = wp[r * in + c];
    e.weight.push_back(std::move(wm));
    e.bias.push_back(Eigen::Map<const Eigen::VectorXf>(b.data_ptr<float>(), out));
  }
  return e;
}

}  // namespace

bool DdpgOptions::IsValid(std::string* error) const {
  std::ostringstream m;
  if (train_steps < 1 || warmup < 0 || warmup >= train_steps)
    m << "need train_steps >= 1 and 0 <= warmup < train_steps";
  else if (batch < 1 || replay < batch || hidden < 1)
    m << "need batch >= 1, replay >= batch, hidden >= 1";
  else if (!(actor_lr > 0) || !(critic_lr > 0) || !(gamma >= 0 && gamma < 1) ||
           !(tau > 0 && tau <= 1))
    m << "need learning rates > 0, gamma in [0, 1), tau in (0, 1]";
  else if (!(noise_start >= 0) || !(noise_end >= 0) || !(ema > 0 && ema <= 1))
    m << "need noise >= 0 and ema in (0, 1]";
  else if (eval_every < 0 || eval_episodes < 1)
    m << "need eval_every >= 0 and eval_episodes >= 1";
  else
    return true;
  if (error) *error = "ddpg: " + m.str();
  return false;
}

void EigenMlp::Forward(const Eigen::VectorXf& in, Eigen::VectorXf* out, Eigen::VectorXf* a,
                       Eigen::VectorXf* b) const {
  const size_t layers = weight.size();
  const Eigen::VectorXf* x = &in;
  for (size_t i = 0; i < layers; ++i) {
    Eigen::VectorXf* y = i + 1 == layers ? out : (i % 2 == 0 ? a : b);
    y->noalias() = weight[i] * *x;
    *y += bias[i];
    if (i + 1 < layers)
      *y = y->cwiseMax(0.0f);
    else
      *y = y->array().tanh();
    x = y;
  }
}

DdpgController::DdpgController(int num_units, int num_exits, EigenMlp actor, DdpgScaling scaling,
                               double ema)
    : ExitController("rl"),
      n_(num_units),
      ne_(num_exits),
      actor_(std::move(actor)),
      scaling_(scaling),
      ema_(ema),
      t_(num_exits, kExitOff),
      x_(kStateSize),
      y_(num_exits) {
  a_.resize(actor_.weight.front().rows());
  b_.resize(actor_.weight.size() > 2 ? actor_.weight[1].rows() : 1);
  Reset();
}

void DdpgController::Reset() {
  acc_ = 1.0;
  lat_ = scaling_.latency_ref_s;
  en_ = scaling_.energy_ref_j;
}

void DdpgController::State(double rate_bps, Eigen::VectorXf* x) const {
  const double r = std::max(rate_bps, 1.0) / scaling_.mean_rate_bps;
  (*x)(0) = static_cast<float>(std::clamp(std::log(r), -4.0, 4.0) / 2.0);
  (*x)(1) = static_cast<float>(2.0 * acc_ - 1.0);
  (*x)(2) = static_cast<float>(std::clamp(lat_ / scaling_.latency_ref_s - 1.0, -1.0, 3.0));
  (*x)(3) = static_cast<float>(std::clamp(en_ / scaling_.energy_ref_j - 1.0, -1.0, 3.0));
}

void DdpgController::Decode(const float* action, int num_units, int num_exits, Thresholds* t,
                            int* k) {
  t->assign(num_exits, kExitOff);
  for (int e = 0; e + 1 < num_exits; ++e) {
    const double th = 0.5 + 0.52 * (std::clamp<double>(action[e], -1, 1) + 1.0) / 2.0;
    (*t)[e] = th > 1.0 ? kExitOff : th;
  }
  const double u = (std::clamp<double>(action[num_exits - 1], -1, 1) + 1.0) / 2.0;
  *k = std::min(num_units, static_cast<int>(std::floor(u * (num_units + 1))));
}

const Thresholds& DdpgController::Begin(const ExitObservation& at0) {
  State(at0.rate_bps, &x_);
  actor_.Forward(x_, &y_, &a_, &b_);
  Decode(y_.data(), n_, ne_, &t_, &k_);
  return t_;
}

void DdpgController::Feedback(const InferenceOutcome& o) {
  acc_ += ema_ * ((o.correct ? 1.0 : 0.0) - acc_);
  lat_ += ema_ * (o.latency_s - lat_);
  en_ += ema_ * (o.energy_j - en_);
}

Result<std::unique_ptr<DdpgController>> TrainDdpg(const ExitWorld& world, const DdpgOptions& o,
                                                  DdpgReport* report) {
  std::string error;
  if (!o.IsValid(&error)) return InvalidArgumentError(error);
  const auto t0 = std::chrono::steady_clock::now();
  const ExitModel& model = *world.model;
  const int n = model.num_units(), ne = model.num_exits();
  const int ad = ne;  // action size
  ScopedOneThread one_thread;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<double> gauss(0.0, 1.0);
  std::uniform_real_distribution<double> uni(-1.0, 1.0);
  std::uniform_int_distribution<size_t> start(0, world.fit->size() - 1);
  std::uniform_int_distribution<size_t> pick(0, world.calib.size() - 1);

  // Feature references: the all-local inference with every early exit off.
  DdpgScaling scaling;
  scaling.mean_rate_bps = std::max(1.0, world.series_model->fit_mean_rate_bps());
  {
    double lat = 0, en = 0;
    for (int l = 1; l <= n; ++l) {
      lat += model.cost().DeviceTime(l);
      en += model.cost().DeviceEnergy(l);
    }
    lat += model.HeadDeviceTime(ne - 1);
    en += model.HeadDeviceEnergy(ne - 1);
    scaling.latency_ref_s = std::max(lat, 1e-9);
    scaling.energy_ref_j = std::max(en, 1e-12);
  }

  Nets nets = MakeNets(o.hidden, ad, gen);
  Mlp& actor = nets.actor;
  Mlp& critic = nets.critic;
  Mlp& actor_t = nets.actor_t;
  Mlp& critic_t = nets.critic_t;
  CopyParams(actor, actor_t);
  CopyParams(critic, critic_t);
  torch::optim::Adam actor_opt(actor->parameters(), torch::optim::AdamOptions(o.actor_lr));
  torch::optim::Adam critic_opt(critic->parameters(), torch::optim::AdamOptions(o.critic_lr));

  const int cap = std::min(o.replay, o.train_steps);
  torch::Tensor rs = torch::zeros({cap, kStateSize}), ra = torch::zeros({cap, ad}),
                rr = torch::zeros({cap, 1}), rn = torch::zeros({cap, kStateSize});
  float* ps = rs.data_ptr<float>();
  float* pa = ra.data_ptr<float>();
  float* pr = rr.data_ptr<float>();
  float* pn = rn.data_ptr<float>();
  int filled = 0, head = 0;

  // The agent's view while training: the same state features as the deployed controller.
  DdpgController probe(n, ne, ToEigen(actor), scaling, o.ema);
  Eigen::VectorXf state(kStateSize), next(kStateSize);
  std::vector<float> action(ad);
  Thresholds t;
  int k = 0;
  double cost_ref = 0.0;

  // Fixed check episodes on the fit part for snapshot selection.
  std::vector<std::pair<size_t, size_t>> check;
  {
    std::mt19937_64 crng(o.seed ^ 0x9e3779b97f4a7c15ULL);
    for (int i = 0; i < o.eval_episodes; ++i) check.emplace_back(start(crng), pick(crng));
  }
  auto score = [&](const EigenMlp& mlp) {
    DdpgController c(n, ne, mlp, scaling, o.ema);
    double sum = 0;
    for (const auto& [i0, si] : check)
      sum += model.Run(*world.calib[si], world.fit->At(i0), c).cost;
    return sum / static_cast<double>(check.size());
  };
  EigenMlp best = ToEigen(actor);
  double best_cost = std::numeric_limits<double>::infinity();
  int best_step = 0, updates = 0;

  for (int step = 0; step < o.train_steps; ++step) {
    const ChannelPath path = world.fit->At(start(rng));
    const ExitSample& sample = *world.calib[pick(rng)];
    probe.State(path.rate_bps[0], &state);
    if (step < o.warmup) {
      for (int i = 0; i < ad; ++i) action[i] = static_cast<float>(uni(rng));
    } else {
      torch::NoGradGuard g;
      torch::Tensor a = actor->forward(torch::from_blob(state.data(), {1, kStateSize}).clone());
      const double frac = static_cast<double>(step - o.warmup) / (o.train_steps - o.warmup);
      const double sigma = o.noise_start + (o.noise_end - o.noise_start) * frac;
      const float* ap = a.data_ptr<float>();
      for (int i = 0; i < ad; ++i)
        action[i] = static_cast<float>(std::clamp(ap[i] + sigma * gauss(rng), -1.0, 1.0));
    }
    DdpgController::Decode(action.data(), n, ne, &t, &k);
    const InferenceOutcome out = model.RunPlan(sample, path, ExitPlan{t, k});
    probe.Feedback(out);
    // cost_ref: the mean cost of the warm-up (random) actions; rewards are -cost / cost_ref.
    if (step < o.warmup) cost_ref += out.cost / o.warmup;
    if (step == std::max(o.warmup - 1, 0) && !(cost_ref > 0)) cost_ref = std::max(out.cost, 1e-9);
    probe.State(path.rate_bps[n], &next);
    std::copy(state.data(), state.data() + kStateSize, ps + head * kStateSize);
    std::copy(action.begin(), action.end(), pa + head * ad);
    pr[head] = static_cast<float>(-out.cost);  // raw; scaled by 1 / cost_ref when sampled
    std::copy(next.data(), next.data() + kStateSize, pn + head * kStateSize);
    head = (head + 1) % cap;
    filled = std::min(filled + 1, cap);
    if (step + 1 < o.warmup || filled < o.batch) continue;

    // One DDPG update.
    std::vector<int64_t> idx(o.batch);
    std::uniform_int_distribution<int> bi(0, filled - 1);
    for (int64_t& i : idx) i = bi(rng);
    torch::Tensor ti = torch::from_blob(idx.data(), {o.batch}, torch::kInt64).clone();
    torch::Tensor s = rs.index_select(0, ti), a = ra.index_select(0, ti),
                  r = rr.index_select(0, ti) / cost_ref, s2 = rn.index_select(0, ti);
    torch::Tensor y = r;
    if (o.gamma > 0) {
      torch::NoGradGuard g;
      y = r + o.gamma * critic_t->forward(torch::cat({s2, actor_t->forward(s2)}, 1));
    }
    torch::Tensor q = critic->forward(torch::cat({s, a}, 1));
    torch::Tensor critic_loss = torch::mse_loss(q, y.detach());
    critic_opt.zero_grad();
    critic_loss.backward();
    critic_opt.step();
    torch::Tensor actor_loss = -critic->forward(torch::cat({s, actor->forward(s)}, 1)).mean();
    actor_opt.zero_grad();
    actor_loss.backward();
    actor_opt.step();
    SoftUpdate(actor, actor_t, o.tau);
    SoftUpdate(critic, critic_t, o.tau);
    ++updates;

    const bool last = step + 1 == o.train_steps;
    if ((o.eval_every > 0 && (step + 1) % o.eval_every == 0) || last) {
      EigenMlp snap = ToEigen(actor);
      const double c = o.eval_every > 0 ? score(snap) : 0.0;
      if (o.eval_every == 0 || c < best_cost) {
        best_cost = c;
        best = std::move(snap);
        best_step = step + 1;
      }
    }
  }
  if (report) {
    report->train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    report->updates = updates;
    report->best_eval_cost = best_cost;
    report->best_eval_step = best_step;
    report->cost_ref = cost_ref;
  }
  return std::make_unique<DdpgController>(n, ne, std::move(best), scaling, o.ema);
}

}  // namespace splitinfer::decision
