#include "cpu/parallel.h"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace kv::cpu {
namespace {

// Workers sleep on a generation counter; each job is split into as many ranges as threads.
// The pool is created on first use and deliberately never destroyed: a JVM may unload or
// exit while a pool exists, and joining threads from a static destructor can deadlock.
class Pool {
 public:
  explicit Pool(int32_t threads) : threads_(threads) {
    for (int32_t i = 1; i < threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
    for (auto& w : workers_) w.detach();
  }

  int32_t threads() const { return threads_; }

  void run(int64_t n, int32_t parts, const std::function<void(int64_t, int64_t)>& body) {
    std::unique_lock<std::mutex> job_lock(job_mutex_);  // one job at a time
    {
      std::lock_guard<std::mutex> lock(mutex_);
      body_ = &body;
      n_ = n;
      parts_ = parts;
      pending_ = parts - 1;
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    run_part(0);
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    body_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void run_part(int32_t part) {
    int64_t begin = n_ * part / parts_;
    int64_t end = n_ * (part + 1) / parts_;
    if (begin >= end) return;
    try {
      (*body_)(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }

  void worker(int32_t index) {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (index >= parts_) continue;
      }
      run_part(index);
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
    }
  }

  const int32_t threads_;
  std::vector<std::thread> workers_;
  std::mutex job_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int64_t, int64_t)>* body_ = nullptr;
  int64_t n_ = 0;
  int32_t parts_ = 1;
  int32_t pending_ = 0;
  uint64_t generation_ = 0;
  std::exception_ptr error_;
};

int32_t configured_threads() {
  if (const char* env = std::getenv("KVASIR_CPU_THREADS")) {
    int value = std::atoi(env);
    if (value > 0) return std::min(value, 1024);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int32_t>(std::min(hw, 1024u));
}

Pool& pool() {
  static Pool* instance = new Pool(configured_threads());
  return *instance;
}

thread_local bool t_inside_pool_job = false;

}  // namespace

int32_t thread_count() { return pool().threads(); }

void parallel_for(int64_t n, int64_t min_grain, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  int64_t grain = std::max<int64_t>(1, min_grain);
  int64_t parts = std::min<int64_t>(pool().threads(), (n + grain - 1) / grain);
  // Nested calls (a kernel calling another from inside a job) run inline.
  if (parts <= 1 || t_inside_pool_job) {
    body(0, n);
    return;
  }
  struct Flag {
    Flag() { t_inside_pool_job = true; }
    ~Flag() { t_inside_pool_job = false; }
  };
  pool().run(n, static_cast<int32_t>(parts), [&](int64_t b, int64_t e) {
    Flag flag;
    body(b, e);
  });
}

}  // namespace kv::cpu
