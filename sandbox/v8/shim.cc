// shim.cc — the only C++ of isoworld: V8 behind the C functions of sandbox/internal.h.
//
// Sealed: no V8 handle and no C++ exception leaves this file. It knows V8's traps (see
// shared/V8-NOTES.md) and handles each one here:
//  - libnode's V8 has no RTTI: this file is built with -fno-rtti (our allocator
//    subclasses v8::ArrayBuffer::Allocator).
//  - reaching the heap limit kills the process unless a NearHeapLimitCallback raises
//    it: ours terminates the run and returns a doubled limit; the isolate is then
//    disposed after the run.
//  - ArrayBuffers live outside the heap: a counting allocator caps them per isolate.
//    ArrayBuffer::NewBackingStore(isolate, n) does not fail when the allocator refuses:
//    it retries after GCs and then aborts the process ("v8::ArrayBuffer::NewBackingStore"
//    OOM). So every buffer this file makes for a VM checks the cap first and throws the
//    RangeError the VM would have got from `new ArrayBuffer(n)`.
//  - termination requested during a builtin that then returns normally stays pending
//    and kills the next entry: every run starts with CancelTerminateExecution.
//  - isolates move between worker threads: every entry takes a v8::Locker and sets the
//    stack limit for the thread it is on. A worker VM (threads library) runs nested in
//    its parent's run, on the same thread: a second isolate entered with its own Locker
//    and Isolate::Scope (V8 keeps a stack of entered isolates per thread).
//  - eval/new Function of a huge string parses for seconds without an interrupt check:
//    code generation from strings is refused over a size.
//  - stale platform tasks of a dead isolate must not run on a new one at the same
//    address: NotifyIsolateShutdown before Dispose.
//  - inside a host callback IsExecutionTerminating() stays false after another thread
//    terminated the isolate: host functions get the run's deadline flag
//    (sbx_call_deadline), which is the termination reason this file records.
//  - a RequestInterrupt callback runs only at an interrupt check while JavaScript
//    executes: a ping (sbx_vm_ping) is answered directly when no JavaScript runs.

#include <libplatform/libplatform.h>
#include <v8.h>

#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../internal.h"

// Measured: every v8::Isolate::New parses /proc/self/maps, under a process-wide mutex,
// to place its code range within 2 GB of the embedded builtins (CodeRangeAddressHint::
// GetAddressHint -> OS::GetFreeMemoryRangesWithin). The file grows with every isolate,
// so creation went from 4.6 ms (50 isolates) to 12 ms (800) and was serialised across
// workers. We run with --no-short-builtin-calls, which makes that placement pointless,
// and interpose the scan (libnode calls it through its PLT; CMake exports this symbol
// from our executables): "no preferred range" makes V8 fall back to its ordinary mmap
// hint. If the interposition does not take, V8 simply runs its own version.
namespace v8 {
namespace base {
class OS {
 public:
  struct MemoryRange {
    uintptr_t start = 0;
    uintptr_t end = 0;
  };
  static std::vector<MemoryRange> GetFreeMemoryRangesWithin(uintptr_t boundary_start, uintptr_t boundary_end,
                                                            size_t minimum_size, size_t alignment);
};
std::vector<OS::MemoryRange> OS::GetFreeMemoryRangesWithin(uintptr_t, uintptr_t, size_t, size_t) { return {}; }
}  // namespace base
}  // namespace v8

namespace {

// ------------------------------------------------------------ platform

// How many foreground tasks of an isolate are queued (posted, not yet run and destroyed).
// Every run used to pump the isolate's task queue (v8::platform::PumpMessageLoop: the
// platform's lock, a map lookup, the delayed queue: ~3.5% of an empty tick's
// instructions, ~5% of its cycles at 1000 players) although almost no tick has a task.
struct PendingTasks {
  std::atomic<int> n{0};
};

// A task counted in its isolate's PendingTasks from its post until it is destroyed (run,
// or dropped with its queue).
class CountedTask final : public v8::Task {
 public:
  CountedTask(std::unique_ptr<v8::Task> inner, std::shared_ptr<PendingTasks> p)
      : inner_(std::move(inner)), p_(std::move(p)) {
    p_->n.fetch_add(1, std::memory_order_relaxed);
  }
  ~CountedTask() override { p_->n.fetch_sub(1, std::memory_order_relaxed); }
  void Run() override { inner_->Run(); }

 private:
  std::unique_ptr<v8::Task> inner_;
  std::shared_ptr<PendingTasks> p_;
};

class CountingRunner final : public v8::TaskRunner {
 public:
  CountingRunner(std::shared_ptr<v8::TaskRunner> inner, std::shared_ptr<PendingTasks> p)
      : inner_(std::move(inner)), p_(std::move(p)) {}
  void PostTask(std::unique_ptr<v8::Task> task) override { inner_->PostTask(Wrap(std::move(task))); }
  void PostNonNestableTask(std::unique_ptr<v8::Task> task) override {
    inner_->PostNonNestableTask(Wrap(std::move(task)));
  }
  void PostDelayedTask(std::unique_ptr<v8::Task> task, double delay) override {
    inner_->PostDelayedTask(Wrap(std::move(task)), delay);
  }
  void PostNonNestableDelayedTask(std::unique_ptr<v8::Task> task, double delay) override {
    inner_->PostNonNestableDelayedTask(Wrap(std::move(task)), delay);
  }
  // Idle tasks run only through RunIdleTasks, which we never call.
  void PostIdleTask(std::unique_ptr<v8::IdleTask> task) override { inner_->PostIdleTask(std::move(task)); }
  bool IdleTasksEnabled() override { return inner_->IdleTasksEnabled(); }
  bool NonNestableTasksEnabled() const override { return inner_->NonNestableTasksEnabled(); }
  bool NonNestableDelayedTasksEnabled() const override { return inner_->NonNestableDelayedTasksEnabled(); }

 private:
  std::unique_ptr<v8::Task> Wrap(std::unique_ptr<v8::Task> t) {
    return std::unique_ptr<v8::Task>(new CountedTask(std::move(t), p_));
  }
  std::shared_ptr<v8::TaskRunner> inner_;
  std::shared_ptr<PendingTasks> p_;
};

// The platform V8 sees: the default one, with foreground task runners that count what is
// posted for each isolate, so a run pumps the queue only when something is queued.
// PumpMessageLoop and NotifyIsolateShutdown take the default platform itself.
class CountingPlatform final : public v8::Platform {
 public:
  explicit CountingPlatform(v8::Platform *inner) : inner_(inner) {}
  // The counter of an isolate (made on first use: V8 may post while creating it).
  std::shared_ptr<PendingTasks> Pending(v8::Isolate *isolate) {
    std::lock_guard<std::mutex> lk(mu_);
    std::shared_ptr<PendingTasks> &p = pending_[isolate];
    if (!p) p = std::make_shared<PendingTasks>();
    return p;
  }
  // After the isolate is disposed (its queued tasks keep their own reference).
  void Forget(v8::Isolate *isolate) {
    std::lock_guard<std::mutex> lk(mu_);
    pending_.erase(isolate);
  }
  v8::PageAllocator *GetPageAllocator() override { return inner_->GetPageAllocator(); }
  v8::ZoneBackingAllocator *GetZoneBackingAllocator() override { return inner_->GetZoneBackingAllocator(); }
  void OnCriticalMemoryPressure() override { inner_->OnCriticalMemoryPressure(); }
  bool OnCriticalMemoryPressure(size_t length) override { return inner_->OnCriticalMemoryPressure(length); }
  int NumberOfWorkerThreads() override { return inner_->NumberOfWorkerThreads(); }
  std::shared_ptr<v8::TaskRunner> GetForegroundTaskRunner(v8::Isolate *isolate) override {
    return std::make_shared<CountingRunner>(inner_->GetForegroundTaskRunner(isolate), Pending(isolate));
  }
  void CallOnWorkerThread(std::unique_ptr<v8::Task> task) override { inner_->CallOnWorkerThread(std::move(task)); }
  void CallBlockingTaskOnWorkerThread(std::unique_ptr<v8::Task> task) override {
    inner_->CallBlockingTaskOnWorkerThread(std::move(task));
  }
  void CallLowPriorityTaskOnWorkerThread(std::unique_ptr<v8::Task> task) override {
    inner_->CallLowPriorityTaskOnWorkerThread(std::move(task));
  }
  void CallDelayedOnWorkerThread(std::unique_ptr<v8::Task> task, double delay) override {
    inner_->CallDelayedOnWorkerThread(std::move(task), delay);
  }
  bool IdleTasksEnabled(v8::Isolate *isolate) override { return inner_->IdleTasksEnabled(isolate); }
  std::unique_ptr<v8::JobHandle> PostJob(v8::TaskPriority priority, std::unique_ptr<v8::JobTask> job) override {
    return inner_->PostJob(priority, std::move(job));
  }
  double MonotonicallyIncreasingTime() override { return inner_->MonotonicallyIncreasingTime(); }
  double CurrentClockTimeMillis() override { return inner_->CurrentClockTimeMillis(); }
  StackTracePrinter GetStackTracePrinter() override { return inner_->GetStackTracePrinter(); }
  v8::TracingController *GetTracingController() override { return inner_->GetTracingController(); }
  void DumpWithoutCrashing() override { inner_->DumpWithoutCrashing(); }
  v8::HighAllocationThroughputObserver *GetHighAllocationThroughputObserver() override {
    return inner_->GetHighAllocationThroughputObserver();
  }

 private:
  v8::Platform *inner_;
  std::mutex mu_;
  std::unordered_map<v8::Isolate *, std::shared_ptr<PendingTasks>> pending_;
};

std::unique_ptr<v8::Platform> g_platform;  // the default platform
std::unique_ptr<CountingPlatform> g_counting;  // what V8 was given
char g_version[64];

// ------------------------------------------------------------ allocator

class CountingAllocator final : public v8::ArrayBuffer::Allocator {
 public:
  explicit CountingAllocator(size_t cap) : cap_(cap) {}
  void *Allocate(size_t n) override {
    if (!Reserve(n)) return nullptr;
    void *p = calloc(1, n ? n : 1);
    if (!p) used_ -= n;
    return p;
  }
  void *AllocateUninitialized(size_t n) override {
    if (!Reserve(n)) return nullptr;
    void *p = malloc(n ? n : 1);
    if (!p) used_ -= n;
    return p;
  }
  void Free(void *p, size_t n) override {
    free(p);
    used_ -= n;
  }
  size_t used() const { return used_.load(std::memory_order_relaxed); }
  bool fits(size_t n) const {
    size_t cur = used();
    return n <= cap_ && cur <= cap_ - n;
  }

 private:
  bool Reserve(size_t n) {
    size_t cur = used_.load(std::memory_order_relaxed);
    do {
      if (n > cap_ || cur > cap_ - n) return false;
    } while (!used_.compare_exchange_weak(cur, cur + n));
    return true;
  }
  std::atomic<size_t> used_{0};
  size_t cap_;
};

static_assert(sizeof(std::atomic<int>) == sizeof(int) && alignof(std::atomic<int>) == alignof(int),
              "the deadline flag is read as a C11 atomic_int");

}  // namespace

// ------------------------------------------------------------ the isolate

struct sbx__iso {
  v8::Isolate *isolate = nullptr;
  CountingAllocator *alloc = nullptr;
  v8::StartupData blob{};
  v8::Global<v8::Context> context;
  // the core's entry points (core.js, __isoworld_attach)
  v8::Global<v8::Function> fn_tick, fn_end, fn_salvage, fn_run, fn_entry, fn_call, fn_timers;
  std::shared_ptr<v8::BackingStore> io_store;  // the core's `io` Float64Array
  double *io = nullptr;
  std::atomic<int> kill_reason{0};  // also the deadline flag of host functions
  std::atomic<int> in_js{0};        // a run is inside (pings need an interrupt)
  std::shared_ptr<PendingTasks> tasks;  // foreground tasks queued for this isolate
  size_t heap_limit = 0, external_limit = 0, max_eval = 0;
  bool heap_hit = false;
  uint64_t runs = 0;
  sbx_heap last_heap{};  // from the last full heap check
  sbx__run *run = nullptr;  // the run in progress, for host callbacks
  // deferred async host functions: promise id -> resolver
  std::unordered_map<uint32_t, v8::Global<v8::Promise::Resolver>> promises;
  // rejections nobody handled yet (reported at the end of a drain)
  std::vector<std::pair<v8::Global<v8::Promise>, v8::Global<v8::Value>>> rejections;
};

namespace {

sbx__iso *IsoOf(v8::Isolate *isolate) { return static_cast<sbx__iso *>(isolate->GetData(0)); }

size_t NearHeapLimit(void *data, size_t current, size_t initial) {
  auto *iso = static_cast<sbx__iso *>(data);
  iso->heap_hit = true;
  sbx__iso_terminate(iso, SBX_HEAP_LIMIT);
  // Room to unwind; the isolate is disposed after the run. The heap may already be far
  // past `current` (one large allocation passes the limit without a callback): a new
  // limit under the heap's size is a fatal OOM ("Reached heap limit"), so measured:
  // `new Array(3e7).fill(1.5)` under 64 MB killed the process with current * 2.
  v8::HeapStatistics hs;
  iso->isolate->GetHeapStatistics(&hs);
  size_t base = hs.total_heap_size() > current ? hs.total_heap_size() : current;
  return base * 2 + (16u << 20);
}

v8::ModifyCodeGenerationFromStringsResult CodeGenFromStrings(v8::Local<v8::Context> context,
                                                             v8::Local<v8::Value> source,
                                                             bool is_code_like) {
  v8::ModifyCodeGenerationFromStringsResult r;
  sbx__iso *iso = IsoOf(context->GetIsolate());
  if (source->IsString() && (size_t)source.As<v8::String>()->Length() <= iso->max_eval) {
    r.codegen_allowed = true;
  }
  return r;  // refused: EvalError "Code generation from strings disallowed for this context"
}

v8::Local<v8::String> Str(v8::Isolate *isolate, const char *s, size_t len) {
  v8::Local<v8::String> out;
  if (len > (size_t)v8::String::kMaxLength ||
      !v8::String::NewFromUtf8(isolate, s, v8::NewStringType::kNormal, (int)len).ToLocal(&out))
    out = v8::String::Empty(isolate);
  return out;
}

v8::Local<v8::String> Str(v8::Isolate *isolate, const char *s) { return Str(isolate, s, strlen(s)); }

// Copies a V8 string out as malloc'd UTF-8 (NUL-terminated).
char *Utf8Dup(v8::Isolate *isolate, v8::Local<v8::String> s, size_t *len_out) {
  int n = s->Utf8Length(isolate);
  char *buf = static_cast<char *>(malloc((size_t)n + 1));
  if (!buf) return nullptr;
  s->WriteUtf8(isolate, buf, n, nullptr, v8::String::NO_NULL_TERMINATION);
  buf[n] = 0;
  if (len_out) *len_out = (size_t)n;
  return buf;
}

// Converts any value to text without running player code that could throw past us.
char *ValueText(v8::Isolate *isolate, v8::Local<v8::Context> ctx, v8::Local<v8::Value> v) {
  v8::TryCatch tc(isolate);
  v8::Local<v8::String> s;
  if (!v->ToString(ctx).ToLocal(&s)) return strdup("[unprintable value]");
  return Utf8Dup(isolate, s, nullptr);
}

// Drops the lines of a stack that name the sandbox's own scripts (isoworld:*), in place.
void CleanStackText(char *s) {
  if (!s) return;
  char *w = s;
  const char *r = s;
  bool first = true;
  while (*r) {
    const char *nl = strchr(r, '\n');
    size_t n = nl ? (size_t)(nl - r) : strlen(r);
    bool drop = false;
    for (size_t i = 0; i + 9 <= n; i++)
      if (memcmp(r + i, "isoworld:", 9) == 0) {
        drop = true;
        break;
      }
    if (!drop) {
      if (!first) *w++ = '\n';
      memmove(w, r, n);
      w += n;
      first = false;
    }
    r += n + (nl ? 1 : 0);
  }
  *w = 0;
}

// Small stack buffer for console lines; heap for long ones.
struct Utf8Buf {
  char small[512];
  char *p = small;
  size_t len = 0;
  Utf8Buf(v8::Isolate *isolate, v8::Local<v8::String> s) {
    int n = s->Utf8Length(isolate);
    if ((size_t)n >= sizeof small) {
      p = static_cast<char *>(malloc((size_t)n + 1));
      if (!p) {
        p = small;
        n = 0;
      }
    }
    s->WriteUtf8(isolate, p, n, nullptr, v8::String::NO_NULL_TERMINATION);
    p[n] = 0;
    len = (size_t)n;
  }
  ~Utf8Buf() {
    if (p != small) free(p);
  }
};

void ThrowError(v8::Isolate *isolate, const char *msg) {
  isolate->ThrowException(v8::Exception::Error(Str(isolate, msg)));
}

// An ArrayBuffer holding a copy of data, or an exception (the VM's RangeError) when the
// external-memory cap has no room: NewBackingStore would abort the process instead.
v8::MaybeLocal<v8::ArrayBuffer> NewBuffer(v8::Isolate *isolate, const void *data, size_t len) {
  sbx__iso *iso = IsoOf(isolate);
  if (!iso->alloc->fits(len)) {
    isolate->ThrowException(v8::Exception::RangeError(Str(isolate, "Array buffer allocation failed")));
    return {};
  }
  std::unique_ptr<v8::BackingStore> bs = v8::ArrayBuffer::NewBackingStore(isolate, len);
  if (len && data) memcpy(bs->Data(), data, len);
  return v8::ArrayBuffer::New(isolate, std::move(bs));
}

// Results deliberately not looked at (GCC's warn_unused_result ignores a (void) cast).
inline void Ignore(v8::Maybe<bool>) {}
inline void Ignore(bool) {}

bool Terminating(v8::Isolate *isolate, v8::TryCatch &tc) {
  return tc.HasTerminated() || isolate->IsExecutionTerminating();
}

// ------------------------------------------------------------ values

constexpr int kMaxDepth = 64;
constexpr size_t kMaxCopy = 64u << 20;

// JavaScript -> sbx_value, in an arena. On failure: false with err set (a TypeError to
// throw), or false with err NULL when an exception (termination) is already pending.
struct ToConv {
  v8::Isolate *isolate;
  v8::Local<v8::Context> ctx;
  sbx__arena *arena;
  size_t budget = kMaxCopy;
  const char *err = nullptr;
};

void *ConvAlloc(ToConv &c, size_t n) {
  if (n > c.budget) {
    c.err = "value too large to copy (over 64 MiB)";
    return nullptr;
  }
  c.budget -= n;
  void *p = sbx__arena_alloc(c.arena, n ? n : 1);
  if (!p) c.err = "out of memory";
  return p;
}

bool ConvString(ToConv &c, v8::Local<v8::String> s, const char **out, size_t *len) {
  size_t n = (size_t)s->Utf8Length(c.isolate);
  char *buf = static_cast<char *>(ConvAlloc(c, n + 1));
  if (!buf) return false;
  s->WriteUtf8(c.isolate, buf, (int)n, nullptr, v8::String::NO_NULL_TERMINATION);
  buf[n] = 0;
  *out = buf;
  *len = n;
  return true;
}

bool ToSbx(ToConv &c, v8::Local<v8::Value> v, sbx_value *out, int depth) {
  memset(out, 0, sizeof *out);
  out->type = SBX_VAL_UNDEFINED;
  if (v->IsUndefined() || v->IsSymbol() || v->IsFunction()) return true;
  if (v->IsNull()) {
    out->type = SBX_VAL_NULL;
    return true;
  }
  if (v->IsBoolean()) {
    out->type = SBX_VAL_BOOL;
    out->u.boolean = v->IsTrue();
    return true;
  }
  if (v->IsNumber()) {
    out->type = SBX_VAL_NUMBER;
    out->u.number = v.As<v8::Number>()->Value();
    return true;
  }
  if (v->IsString()) {
    out->type = SBX_VAL_STRING;
    return ConvString(c, v.As<v8::String>(), &out->u.string, &out->len);
  }
  if (v->IsBigInt()) {
    c.err = "a BigInt cannot be copied";
    return false;
  }
  if (depth >= kMaxDepth) {
    c.err = "value nested too deep to copy (over 64 levels)";
    return false;
  }
  if (v->IsArrayBuffer() || v->IsSharedArrayBuffer()) {
    std::shared_ptr<v8::BackingStore> bs =
        v->IsArrayBuffer() ? v.As<v8::ArrayBuffer>()->GetBackingStore() : v.As<v8::SharedArrayBuffer>()->GetBackingStore();
    size_t n = bs->ByteLength();
    unsigned char *buf = static_cast<unsigned char *>(ConvAlloc(c, n));
    if (!buf) return false;
    if (n) memcpy(buf, bs->Data(), n);
    out->type = SBX_VAL_BYTES;
    out->u.bytes = buf;
    out->len = n;
    return true;
  }
  if (v->IsArrayBufferView()) {
    v8::Local<v8::ArrayBufferView> view = v.As<v8::ArrayBufferView>();
    size_t n = view->ByteLength();
    unsigned char *buf = static_cast<unsigned char *>(ConvAlloc(c, n));
    if (!buf) return false;
    if (n) view->CopyContents(buf, n);
    out->type = SBX_VAL_BYTES;
    out->u.bytes = buf;
    out->len = n;
    return true;
  }
  if (v->IsDate()) {
    double ms = v.As<v8::Date>()->ValueOf();
    if (!std::isfinite(ms)) {
      out->type = SBX_VAL_NULL;
      return true;
    }
    time_t secs = (time_t)std::floor(ms / 1000);
    int msec = (int)(ms - (double)secs * 1000);
    struct tm tmv;
    gmtime_r(&secs, &tmv);
    char *buf = static_cast<char *>(ConvAlloc(c, 32));
    if (!buf) return false;
    int n = snprintf(buf, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tmv.tm_year + 1900, tmv.tm_mon + 1, tmv.tm_mday,
                     tmv.tm_hour, tmv.tm_min, tmv.tm_sec, msec);
    out->type = SBX_VAL_STRING;
    out->u.string = buf;
    out->len = (size_t)(n < 0 ? 0 : n);
    return true;
  }
  if (v->IsArray()) {
    v8::Local<v8::Array> a = v.As<v8::Array>();
    uint32_t n = a->Length();
    if ((size_t)n * sizeof(sbx_value) > c.budget) {
      c.err = "value too large to copy (over 64 MiB)";
      return false;
    }
    sbx_value *items = static_cast<sbx_value *>(ConvAlloc(c, (size_t)n * sizeof(sbx_value)));
    if (!items) return false;
    for (uint32_t i = 0; i < n; i++) {
      v8::Local<v8::Value> item;
      if (!a->Get(c.ctx, i).ToLocal(&item)) return false;
      if (!ToSbx(c, item, &items[i], depth + 1)) return false;
    }
    out->type = SBX_VAL_ARRAY;
    out->u.items = items;
    out->len = n;
    return true;
  }
  if (v->IsObject()) {
    v8::Local<v8::Object> o = v.As<v8::Object>();
    v8::Local<v8::Array> keys;
    if (!o->GetOwnPropertyNames(c.ctx, v8::PropertyFilter(v8::ONLY_ENUMERABLE | v8::SKIP_SYMBOLS),
                                v8::KeyConversionMode::kConvertToString)
             .ToLocal(&keys))
      return false;
    uint32_t n = keys->Length();
    if ((size_t)n * sizeof(sbx_value) > c.budget) {
      c.err = "value too large to copy (over 64 MiB)";
      return false;
    }
    sbx_value *items = static_cast<sbx_value *>(ConvAlloc(c, (size_t)n * sizeof(sbx_value)));
    if (!items) return false;
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
      v8::Local<v8::Value> key, item;
      if (!keys->Get(c.ctx, i).ToLocal(&key) || !key->IsString()) return false;
      if (!o->Get(c.ctx, key).ToLocal(&item)) return false;
      if (item->IsFunction() || item->IsSymbol()) continue;
      const char *ks;
      size_t kl;
      if (!ConvString(c, key.As<v8::String>(), &ks, &kl)) return false;
      if (!ToSbx(c, item, &items[k], depth + 1)) return false;
      items[k].key = ks;
      k++;
    }
    out->type = SBX_VAL_OBJECT;
    out->u.items = items;
    out->len = k;
    return true;
  }
  return true;
}

// sbx_value -> JavaScript. Empty on failure, with an exception pending.
v8::MaybeLocal<v8::Value> FromSbx(v8::Isolate *isolate, v8::Local<v8::Context> ctx, const sbx_value *v, int depth) {
  if (!v) return v8::Undefined(isolate);
  switch (v->type) {
    case SBX_VAL_UNDEFINED:
      return v8::Undefined(isolate);
    case SBX_VAL_NULL:
      return v8::Null(isolate);
    case SBX_VAL_BOOL:
      return v8::Boolean::New(isolate, v->u.boolean);
    case SBX_VAL_NUMBER:
      return v8::Number::New(isolate, v->u.number);
    case SBX_VAL_STRING: {
      v8::Local<v8::String> s;
      if (v->len > (size_t)v8::String::kMaxLength ||
          !v8::String::NewFromUtf8(isolate, v->u.string ? v->u.string : "", v8::NewStringType::kNormal, (int)v->len)
               .ToLocal(&s)) {
        if (!isolate->IsExecutionTerminating())
          isolate->ThrowException(v8::Exception::RangeError(Str(isolate, "Invalid string length")));
        return {};
      }
      return s;
    }
    case SBX_VAL_BYTES: {
      v8::Local<v8::ArrayBuffer> ab;
      if (!NewBuffer(isolate, v->u.bytes, v->len).ToLocal(&ab)) return {};
      return ab;
    }
    case SBX_VAL_ARRAY:
    case SBX_VAL_OBJECT: {
      if (depth >= kMaxDepth) {
        isolate->ThrowException(v8::Exception::TypeError(Str(isolate, "value nested too deep to copy")));
        return {};
      }
      if (v->type == SBX_VAL_ARRAY) {
        v8::Local<v8::Value> small[16];
        std::vector<v8::Local<v8::Value>> big;
        v8::Local<v8::Value> *el = small;
        if (v->len > 16) {
          big.resize(v->len);
          el = big.data();
        }
        for (size_t i = 0; i < v->len; i++)
          if (!FromSbx(isolate, ctx, &v->u.items[i], depth + 1).ToLocal(&el[i])) return {};
        return v8::Array::New(isolate, el, v->len);
      }
      v8::Local<v8::Object> o = v8::Object::New(isolate);
      for (size_t i = 0; i < v->len; i++) {
        const sbx_value *item = &v->u.items[i];
        v8::Local<v8::Value> jv;
        if (!FromSbx(isolate, ctx, item, depth + 1).ToLocal(&jv)) return {};
        if (!o->CreateDataProperty(ctx, Str(isolate, item->key ? item->key : ""), jv).FromMaybe(false)) return {};
      }
      return o;
    }
  }
  return v8::Undefined(isolate);
}

// A blob as an external string (no copy) when it is ASCII: the string holds a reference.
class BlobString final : public v8::String::ExternalOneByteStringResource {
 public:
  explicit BlobString(sbx_blob *b) : b_(sbx_blob_ref(b)) {}
  ~BlobString() override { sbx_blob_unref(b_); }
  const char *data() const override { return b_->data; }
  size_t length() const override { return b_->len; }

 private:
  sbx_blob *b_;
};

// ------------------------------------------------------------ host functions

// The run a host function belongs to, or null when it must not run: no run in progress,
// or the watchdog gave up on it (the vm belongs to others now).
sbx__run *LiveRun(v8::Isolate *isolate) {
  sbx__run *run = IsoOf(isolate)->run;
  if (!run || sbx__run_abandoned(run)) return nullptr;
  return run;
}

const sbx__fnrec *RecOf(const v8::FunctionCallbackInfo<v8::Value> &info) {
  return static_cast<const sbx__fnrec *>(info.Data().As<v8::External>()->Value());
}

// core: log(level, text, unsafe)
void HostLog(const v8::FunctionCallbackInfo<v8::Value> &info) {
  v8::Isolate *isolate = info.GetIsolate();
  sbx__run *run = LiveRun(isolate);
  if (!run || info.Length() < 2 || !info[1]->IsString()) return;
  int level = info[0]->IsInt32() ? info[0].As<v8::Int32>()->Value() : 0;
  if (level < SBX_LOG || level > SBX_RESULT) level = SBX_LOG;
  bool unsafe = info.Length() > 2 && info[2]->IsTrue();
  Utf8Buf b(isolate, info[1].As<v8::String>());
  sbx__run_log(run, level, b.p, b.len, unsafe);
}

// core: error(text) — an error reported by core.report: on_error.
void HostError(const v8::FunctionCallbackInfo<v8::Value> &info) {
  v8::Isolate *isolate = info.GetIsolate();
  sbx__run *run = LiveRun(isolate);
  if (!run || !run->vm->opt.on_error || info.Length() < 1 || !info[0]->IsString()) return;
  Utf8Buf b(isolate, info[0].As<v8::String>());
  sbx__run_error(run, SBX_EXCEPTION, b.p);
}

// core: callDone(id, ok, value) — the result of a host -> isolate call.
void HostCallDone(const v8::FunctionCallbackInfo<v8::Value> &info) {
  v8::Isolate *isolate = info.GetIsolate();
  sbx__run *run = LiveRun(isolate);
  if (!run || info.Length() < 3 || !info[0]->IsUint32()) return;
  uint32_t id = info[0].As<v8::Uint32>()->Value();
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  if (!info[1]->IsTrue()) {
    char *text = ValueText(isolate, ctx, info[2]);
    sbx__vm_call_finish(run->vm, id, SBX_EXCEPTION, nullptr, text ? text : "error");
    free(text);
    return;
  }
  alignas(16) char first_chunk[1024];
  sbx__arena arena{nullptr, first_chunk, sizeof first_chunk};
  ToConv c{isolate, ctx, &arena};
  sbx_value v;
  v8::TryCatch tc(isolate);
  if (ToSbx(c, info[2], &v, 0)) {
    sbx__vm_call_finish(run->vm, id, SBX_OK, &v, nullptr);
  } else if (!Terminating(isolate, tc)) {
    char msg[160];
    snprintf(msg, sizeof msg, "TypeError: the result cannot be copied to the host: %s",
             c.err ? c.err : "its conversion threw");
    sbx__vm_call_finish(run->vm, id, SBX_EXCEPTION, nullptr, msg);
  } else {
    tc.ReThrow();
  }
  sbx__arena_release(&arena);
}

// Compiles a CommonJS module body into a function of params, named `display` in stack
// traces. A SyntaxError carries no location in its stack: give it the Node-style one
// ("main:1\n<line>\n   ^\n\nSyntaxError: ...") so the player sees module and line.
bool CompileModule(v8::Isolate *isolate, v8::Local<v8::Context> ctx, const char *display, const char *src, size_t len,
                   int nparams, v8::Local<v8::Function> *out) {
  if (len > (size_t)v8::String::kMaxLength) {
    ThrowError(isolate, "module too large");
    return false;
  }
  static const char *const names[5] = {"module", "exports", "require", "__filename", "__dirname"};
  v8::Local<v8::String> params[5];
  for (int i = 0; i < nparams; i++) params[i] = Str(isolate, names[i]);
  v8::ScriptOrigin origin(isolate, Str(isolate, display));
  v8::ScriptCompiler::Source source(Str(isolate, src, len), origin);
  v8::TryCatch tc(isolate);
  if (v8::ScriptCompiler::CompileFunction(ctx, &source, (size_t)nparams, params).ToLocal(out)) return true;
  if (!tc.HasCaught() || tc.HasTerminated()) {
    tc.ReThrow();
    return false;
  }
  v8::Local<v8::Value> ex = tc.Exception();
  v8::Local<v8::Message> msg = tc.Message();
  if (!msg.IsEmpty() && ex->IsObject()) {
    int line = msg->GetLineNumber(ctx).FromMaybe(0);
    int col = msg->GetStartColumn(ctx).FromMaybe(0);
    v8::Local<v8::String> src_line;
    char *sl = nullptr;
    if (msg->GetSourceLine(ctx).ToLocal(&src_line)) sl = Utf8Dup(isolate, src_line, nullptr);
    char *text = ValueText(isolate, ctx, ex);
    size_t cap = 64 + strlen(display) + (sl ? strlen(sl) : 0) + (size_t)(col > 0 ? col : 0) + (text ? strlen(text) : 0);
    char *stack = static_cast<char *>(malloc(cap));
    if (stack) {
      if (sl && strlen(sl) < 200 && col < 200) {
        int off = snprintf(stack, cap, "%s:%d\n%s\n", display, line, sl);
        for (int i = 0; i < col && (size_t)off + 2 < cap; i++) stack[off++] = ' ';
        snprintf(stack + off, cap - (size_t)off, "^\n\n%s", text ? text : "SyntaxError");
      } else {
        snprintf(stack, cap, "%s\n    at %s:%d:%d", text ? text : "SyntaxError", display, line, col + 1);
      }
      Ignore(ex.As<v8::Object>()->Set(ctx, Str(isolate, "stack"), Str(isolate, stack)));
      free(stack);
    }
    free(sl);
    free(text);
  }
  tc.ReThrow();
  return false;
}

// modules: compile(name) — require()'s back end over sbx_vm_set_code's modules: the
// module's function (module, exports, require), an ArrayBuffer for a binary module, or
// undefined when there is no such module.
void HostCompile(const v8::FunctionCallbackInfo<v8::Value> &info) {
  v8::Isolate *isolate = info.GetIsolate();
  sbx__run *run = LiveRun(isolate);
  if (!run || info.Length() < 1 || !info[0]->IsString()) return;
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  Utf8Buf name(isolate, info[0].As<v8::String>());
  const sbx_module *m = sbx__code_find(run->code, name.p, name.len);
  if (!m) return;
  if (m->binary) {
    v8::Local<v8::ArrayBuffer> ab;
    if (NewBuffer(isolate, m->source, m->len).ToLocal(&ab)) info.GetReturnValue().Set(ab);
    return;
  }
  v8::Local<v8::Function> fn;
  if (CompileModule(isolate, ctx, m->name, m->source, m->len, 3, &fn)) info.GetReturnValue().Set(fn);
}

// codebase: load(path) — a file of the tree for require(): its module function (module,
// exports, require, __filename, __dirname), the text of a .json file, or an ArrayBuffer
// of a binary one.
void HostLoad(const v8::FunctionCallbackInfo<v8::Value> &info) {
  v8::Isolate *isolate = info.GetIsolate();
  sbx__run *run = LiveRun(isolate);
  if (!run || info.Length() < 1 || !info[0]->IsString()) return;
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  const sbx__fnrec *rec = RecOf(info);
  auto *cb = static_cast<sbx__codebase *>(run->vm->states[rec->lib_index]);
  Utf8Buf path(isolate, info[0].As<v8::String>());
  char *data = nullptr;
  size_t len = 0;
  bool binary = false;
  int rc = sbx__codebase_read(cb, path.p, &data, &len, &binary);
  if (rc != SBX_OK) {
    char msg[300];
    snprintf(msg, sizeof msg, "Cannot load module '%.200s': %s", path.p, sbx_strerror(rc));
    ThrowError(isolate, msg);
    return;
  }
  if (binary) {
    v8::Local<v8::ArrayBuffer> ab;
    if (NewBuffer(isolate, data, len).ToLocal(&ab)) info.GetReturnValue().Set(ab);
  } else if (path.len >= 5 && memcmp(path.p + path.len - 5, ".json", 5) == 0) {
    info.GetReturnValue().Set(Str(isolate, data, len));
  } else {
    char *display = sbx__module_display_name(path.p);
    v8::Local<v8::Function> fn;
    if (display && CompileModule(isolate, ctx, display, data, len, 5, &fn)) info.GetReturnValue().Set(fn);
    free(display);
  }
  free(data);
}

// codebase: external(name, from) — the host's resolver hook: a module function or
// undefined.
void HostExternal(const v8::FunctionCallbackInfo<v8::Value> &info) {
  v8::Isolate *isolate = info.GetIsolate();
  sbx__run *run = LiveRun(isolate);
  if (!run || info.Length() < 2 || !info[0]->IsString() || !info[1]->IsString()) return;
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  const sbx__fnrec *rec = RecOf(info);
  auto *cb = static_cast<sbx__codebase *>(run->vm->states[rec->lib_index]);
  Utf8Buf name(isolate, info[0].As<v8::String>());
  Utf8Buf from(isolate, info[1].As<v8::String>());
  char *src = nullptr;
  size_t len = 0;
  if (sbx__codebase_external(cb, name.p, from.p, &src, &len) != 0 || !src) return;
  v8::Local<v8::Function> fn;
  if (CompileModule(isolate, ctx, name.p, src, len, 5, &fn)) info.GetReturnValue().Set(fn);
  free(src);
}

void HostCpu(const v8::FunctionCallbackInfo<v8::Value> &info) {
  sbx__run *run = LiveRun(info.GetIsolate());
  info.GetReturnValue().Set(run ? sbx__run_cpu_ms(run) : 0.0);
}

void HostHeap(const v8::FunctionCallbackInfo<v8::Value> &info) {
  v8::Isolate *isolate = info.GetIsolate();
  sbx__iso *iso = IsoOf(isolate);
  v8::HeapStatistics hs;
  isolate->GetHeapStatistics(&hs);
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  v8::Local<v8::Object> o = v8::Object::New(isolate);
  bool ok = true;
  auto set = [&](const char *k, double v) {
    ok = ok && o->Set(ctx, Str(isolate, k), v8::Number::New(isolate, v)).FromMaybe(false);
  };
  set("total_heap_size", (double)hs.total_heap_size());
  set("total_heap_size_executable", (double)hs.total_heap_size_executable());
  set("total_physical_size", (double)hs.total_physical_size());
  set("total_available_size", (double)hs.total_available_size());
  set("used_heap_size", (double)hs.used_heap_size());
  set("heap_size_limit", (double)iso->heap_limit);
  set("malloced_memory", (double)hs.malloced_memory());
  set("peak_malloced_memory", (double)hs.peak_malloced_memory());
  set("does_zap_garbage", (double)hs.does_zap_garbage());
  set("externally_allocated_size", (double)iso->alloc->used());
  if (ok) info.GetReturnValue().Set(o);
}

void HostMemory(const v8::FunctionCallbackInfo<v8::Value> &info) {
  v8::Isolate *isolate = info.GetIsolate();
  sbx__run *run = LiveRun(isolate);
  if (!run || !run->in->memory) return;
  bool failed = false;
  const char *mem = sbx__run_memory(run, &failed);
  if (failed) ThrowError(isolate, "out of memory reading Memory");
  if (!mem) return;
  info.GetReturnValue().Set(Str(isolate, mem, run->in->memory_len));
}

void HostSegments(const v8::FunctionCallbackInfo<v8::Value> &info) {
  v8::Isolate *isolate = info.GetIsolate();
  sbx__run *run = LiveRun(isolate);
  if (!run || !run->in->n_segments) return;
  const sbx_tick_in *in = run->in;
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  v8::Local<v8::Array> a = v8::Array::New(isolate, (int)(2 * in->n_segments));
  uint32_t k = 0;
  for (size_t i = 0; i < in->n_segments; i++) {
    const sbx_segment *sg = &in->segments[i];
    if (sg->id < 0 || sg->id >= SBX_SEGMENT_IDS || (!sg->data && sg->len)) continue;
    if (!a->Set(ctx, k++, v8::Integer::New(isolate, sg->id)).FromMaybe(false) ||
        !a->Set(ctx, k++, Str(isolate, sg->data ? sg->data : "", sg->len)).FromMaybe(false))
      return;
  }
  info.GetReturnValue().Set(a);
}

// memory: out(memory, segments, active) — the end of a tick that touched Memory.
void HostMemoryOut(const v8::FunctionCallbackInfo<v8::Value> &info) {
  v8::Isolate *isolate = info.GetIsolate();
  sbx__run *run = LiveRun(isolate);
  if (!run) return;
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  const sbx_tick_in *in = run->in;
  v8::Local<v8::Value> mem = info[0], segs = info[1], active = info[2];
  if (mem->IsString()) {
    v8::Local<v8::String> s = mem.As<v8::String>();
    size_t max = in->memory_max ? in->memory_max : (size_t)2 * 1024 * 1024;
    if ((size_t)s->Length() > max) {
      char msg[160];
      snprintf(msg, sizeof msg, "Memory size is over the %zu KB limit (%d characters): this tick's changes are not saved",
               max / 1024, s->Length());
      sbx__run_log(run, SBX_ERROR, msg, strlen(msg), false);
    } else {
      free(run->memory);
      run->memory = Utf8Dup(isolate, s, &run->memory_len);
      run->memory_changed = run->memory != nullptr;
    }
  }
  if (segs->IsArray() && !run->segments_written) {
    v8::Local<v8::Array> sa = segs.As<v8::Array>();
    uint32_t n = sa->Length() / 2;
    if (n > SBX_SEGMENTS_ACTIVE_MAX) n = SBX_SEGMENTS_ACTIVE_MAX;
    if (n) run->segments_written = static_cast<sbx_segment *>(calloc(n, sizeof(sbx_segment)));
    for (uint32_t i = 0; run->segments_written && i < n; i++) {
      v8::Local<v8::Value> id, text;
      if (!sa->Get(ctx, 2 * i).ToLocal(&id) || !id->IsInt32() || !sa->Get(ctx, 2 * i + 1).ToLocal(&text) ||
          !text->IsString())
        continue;
      int sid = id.As<v8::Int32>()->Value();
      if (sid < 0 || sid >= SBX_SEGMENT_IDS || text.As<v8::String>()->Length() > SBX_SEGMENT_MAX_BYTES) continue;
      sbx_segment *sg = &run->segments_written[run->n_segments_written];
      sg->data = Utf8Dup(isolate, text.As<v8::String>(), &sg->len);
      if (!sg->data) continue;
      sg->id = sid;
      run->n_segments_written++;
    }
  }
  if (active->IsArray()) {
    v8::Local<v8::Array> aa = active.As<v8::Array>();
    run->active_segments_set = true;
    run->n_active_segments = 0;
    for (uint32_t i = 0; i < aa->Length() && run->n_active_segments < SBX_SEGMENTS_ACTIVE_MAX; i++) {
      v8::Local<v8::Value> id;
      if (aa->Get(ctx, i).ToLocal(&id) && id->IsInt32()) {
        int sid = id.As<v8::Int32>()->Value();
        if (sid >= 0 && sid < SBX_SEGMENT_IDS) run->active_segments[run->n_active_segments++] = sid;
      }
    }
  }
}

void HostHalt(const v8::FunctionCallbackInfo<v8::Value> &info) {
  sbx__iso *iso = IsoOf(info.GetIsolate());
  if (LiveRun(info.GetIsolate())) sbx__iso_terminate(iso, SBX_HALTED);
}

const v8::FunctionCallback kBuiltins[SBX__B_N] = {
    nullptr,       HostCompile, HostMemory, HostSegments, HostMemoryOut, HostCpu,
    HostHeap,      HostHalt,    HostLoad,   HostExternal,
};

// ------------------------------------------------------------ library host functions

// The glue of an sbx_host_fn: copies the arguments, calls it, and makes its promise
// (async) or return value (sync).
void HostDispatch(const v8::FunctionCallbackInfo<v8::Value> &info) {
  v8::Isolate *isolate = info.GetIsolate();
  const sbx__fnrec *rec = RecOf(info);
  bool async = (rec->def->flags & SBX_FN_ASYNC) != 0;
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  v8::Local<v8::Promise::Resolver> resolver;
  if (async) {
    if (!v8::Promise::Resolver::New(ctx).ToLocal(&resolver)) return;
    info.GetReturnValue().Set(resolver->GetPromise());
  }
  auto fail = [&](const char *msg) {
    v8::Local<v8::Value> e = v8::Exception::Error(Str(isolate, msg));
    if (async) Ignore(resolver->Reject(ctx, e));
    else isolate->ThrowException(e);
  };
  sbx__run *run = LiveRun(isolate);
  if (!run) {
    fail("the VM is not running");
    return;
  }
  sbx_vm *vm = run->vm;
  if (__atomic_load_n(&vm->disposed, __ATOMIC_ACQUIRE)) {
    fail("the VM is being disposed");
    return;
  }
  alignas(16) char first_chunk[1024];
  sbx__arena arena{nullptr, first_chunk, sizeof first_chunk};
  ToConv c{isolate, ctx, &arena};
  int n = info.Length();
  sbx_value small[8];
  sbx_value *argv = n <= 8 ? small : static_cast<sbx_value *>(ConvAlloc(c, (size_t)n * sizeof(sbx_value)));
  bool ok = argv != nullptr;
  {
    v8::TryCatch tc(isolate);
    for (int i = 0; ok && i < n; i++) ok = ToSbx(c, info[i], &argv[i], 0);
    if (!ok && (tc.HasCaught() || Terminating(isolate, tc))) {
      sbx__arena_release(&arena);
      if (async && !Terminating(isolate, tc)) Ignore(resolver->Reject(ctx, tc.Exception()));
      else tc.ReThrow();
      return;
    }
  }
  if (!ok) {
    char msg[200];
    snprintf(msg, sizeof msg, "%s(): an argument cannot be copied to the host: %s", rec->def->name,
             c.err ? c.err : "out of memory");
    sbx__arena_release(&arena);
    v8::Local<v8::Value> e = v8::Exception::TypeError(Str(isolate, msg));
    if (async) Ignore(resolver->Reject(ctx, e));
    else isolate->ThrowException(e);
    return;
  }
  sbx_call call{};
  call.run = run;
  call.vm = vm;
  call.rec = rec;
  call.state = vm->states[rec->lib_index];
  call.info = const_cast<v8::FunctionCallbackInfo<v8::Value> *>(&info);
  call.resolver = async ? &resolver : nullptr;
  call.async = async;
  rec->def->fn(&call, argv, (size_t)n);
  sbx__arena_release(&arena);
  if (async && !call.settled && !call.deferred) Ignore(resolver->Resolve(ctx, v8::Undefined(isolate)));
}

}  // namespace

// ------------------------------------------------------------ sbx_call_* (C API)

extern "C" void sbx_call_return(sbx_call *c, const sbx_value *v) {
  if (!c || c->settled || c->deferred) return;
  c->settled = true;
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  v8::TryCatch tc(isolate);
  v8::Local<v8::Value> jv;
  if (!FromSbx(isolate, ctx, v, 0).ToLocal(&jv)) {
    if (Terminating(isolate, tc)) {
      tc.ReThrow();
      return;
    }
    if (c->async) Ignore((*static_cast<v8::Local<v8::Promise::Resolver> *>(c->resolver))->Reject(ctx, tc.Exception()));
    else tc.ReThrow();
    return;
  }
  if (c->async) Ignore((*static_cast<v8::Local<v8::Promise::Resolver> *>(c->resolver))->Resolve(ctx, jv));
  else static_cast<const v8::FunctionCallbackInfo<v8::Value> *>(c->info)->GetReturnValue().Set(jv);
}

extern "C" void sbx_call_return_number(sbx_call *c, double x) {
  sbx_value v = sbx_number(x);
  sbx_call_return(c, &v);
}

extern "C" void sbx_call_return_string(sbx_call *c, const char *s, size_t len) {
  sbx_value v = sbx_string_n(s, len);
  sbx_call_return(c, &v);
}

extern "C" void sbx_call_return_blob(sbx_call *c, sbx_blob *b, bool as_string) {
  if (!c || !b || c->settled || c->deferred) return;
  if (!as_string || !b->ascii || b->len > (size_t)v8::String::kMaxLength) {
    sbx_value v = as_string ? sbx_string_n(b->data, b->len) : sbx_bytes(b->data, b->len);
    sbx_call_return(c, &v);
    return;
  }
  c->settled = true;
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  auto *res = new (std::nothrow) BlobString(b);
  v8::Local<v8::String> s;
  if (!res || !v8::String::NewExternalOneByte(isolate, res).ToLocal(&s)) {
    delete res;
    s = Str(isolate, b->data, b->len);
  }
  if (c->async) Ignore((*static_cast<v8::Local<v8::Promise::Resolver> *>(c->resolver))->Resolve(ctx, s));
  else static_cast<const v8::FunctionCallbackInfo<v8::Value> *>(c->info)->GetReturnValue().Set(s);
}

extern "C" void sbx_call_throw(sbx_call *c, const char *fmt, ...) {
  if (!c || c->settled || c->deferred) return;
  c->settled = true;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  v8::Local<v8::Value> e = v8::Exception::Error(Str(isolate, buf));
  if (c->async) {
    Ignore((*static_cast<v8::Local<v8::Promise::Resolver> *>(c->resolver))->Reject(isolate->GetCurrentContext(), e));
  } else {
    isolate->ThrowException(e);
  }
}

extern "C" sbx_async *sbx_call_defer(sbx_call *c) {
  if (!c || !c->async || c->settled || c->deferred) return nullptr;
  auto *a = static_cast<sbx_async *>(malloc(sizeof(sbx_async)));
  if (!a) return nullptr;
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  sbx__iso *iso = IsoOf(isolate);
  uint32_t id = __atomic_add_fetch(&c->vm->next_id, 1, __ATOMIC_RELAXED);
  if (id == 0) id = __atomic_add_fetch(&c->vm->next_id, 1, __ATOMIC_RELAXED);
  iso->promises[id].Reset(isolate, *static_cast<v8::Local<v8::Promise::Resolver> *>(c->resolver));
  __atomic_add_fetch(&c->vm->mb->refs, 1, __ATOMIC_ACQ_REL);
  a->mb = c->vm->mb;
  a->id = id;
  c->deferred = true;
  return a;
}

extern "C" const int *sbx__iso_deadline(sbx__iso *iso) { return reinterpret_cast<const int *>(&iso->kill_reason); }

namespace {

// ------------------------------------------------------------ globals

void OnPromiseReject(v8::PromiseRejectMessage msg) {
  v8::Local<v8::Promise> p = msg.GetPromise();
  v8::Isolate *isolate = p->GetIsolate();
  sbx__iso *iso = IsoOf(isolate);
  if (!iso) return;
  if (msg.GetEvent() == v8::kPromiseRejectWithNoHandler) {
    if (iso->rejections.size() >= 64) return;  // reported in bulk below; no unbounded growth
    iso->rejections.emplace_back(v8::Global<v8::Promise>(isolate, p), v8::Global<v8::Value>(isolate, msg.GetValue()));
  } else if (msg.GetEvent() == v8::kPromiseHandlerAddedAfterReject) {
    for (size_t i = 0; i < iso->rejections.size(); i++) {
      if (iso->rejections[i].first == p) {
        iso->rejections.erase(iso->rejections.begin() + (long)i);
        break;
      }
    }
  }
}

// Rejections still unhandled at the end of a drain: an error line and on_error.
void ReportRejections(sbx__iso *iso, sbx__run *run, v8::Local<v8::Context> ctx) {
  if (iso->rejections.empty()) return;
  v8::Isolate *isolate = iso->isolate;
  auto list = std::move(iso->rejections);
  iso->rejections.clear();
  for (auto &r : list) {
    v8::HandleScope hs(isolate);
    v8::Local<v8::Value> v = r.second.Get(isolate);
    char *text = nullptr;
    {
      v8::TryCatch tc(isolate);
      v8::Local<v8::Value> st;
      if (v->IsObject() && v.As<v8::Object>()->Get(ctx, Str(isolate, "stack")).ToLocal(&st) && st->IsString())
        text = Utf8Dup(isolate, st.As<v8::String>(), nullptr);
      if (!text) text = ValueText(isolate, ctx, v);
    }
    if (!text) continue;
    CleanStackText(text);
    size_t n = strlen(text) + 64;
    char *line = static_cast<char *>(malloc(n));
    if (line) {
      snprintf(line, n, "Unhandled promise rejection: %s", text);
      sbx__run_log(run, SBX_ERROR, line, strlen(line), false);
      sbx__run_error(run, SBX_EXCEPTION, line);
      free(line);
    }
    free(text);
  }
}

// A fresh global from the snapshot, attached to the host: each library gets its host
// functions and its config.
bool NewGlobal(sbx__iso *iso, sbx__run *run, char **error) {
  v8::Isolate *isolate = iso->isolate;
  sbx_runtime *rt = run->vm->rt;
  v8::HandleScope hs(isolate);
  iso->fn_tick.Reset();
  iso->fn_end.Reset();
  iso->fn_salvage.Reset();
  iso->fn_run.Reset();
  iso->fn_entry.Reset();
  iso->fn_call.Reset();
  iso->fn_timers.Reset();
  iso->context.Reset();
  iso->io_store.reset();
  iso->io = nullptr;
  iso->promises.clear();
  iso->rejections.clear();
  v8::Local<v8::Context> ctx = v8::Context::New(isolate);
  if (ctx.IsEmpty()) {
    *error = strdup("could not create a context");
    return false;
  }
  v8::Context::Scope cs(ctx);
  // V8 asks CodeGenFromStrings only when the context disallows code generation.
  ctx->AllowCodeGenerationFromStrings(false);
  v8::TryCatch tc(isolate);
  auto fn = [&](v8::FunctionCallback cb, const void *data, v8::Local<v8::Function> *out) {
    v8::Local<v8::Value> d = data ? v8::Local<v8::Value>(v8::External::New(isolate, const_cast<void *>(data)))
                                  : v8::Local<v8::Value>();
    return v8::Function::New(ctx, cb, d, 0, v8::ConstructorBehavior::kThrow).ToLocal(out);
  };
  v8::Local<v8::Array> hosts = v8::Array::New(isolate, (int)rt->n_libs + 1);
  v8::Local<v8::Array> configs = v8::Array::New(isolate, (int)rt->n_libs + 1);
  bool ok = true;
  {
    v8::Local<v8::Object> core = v8::Object::New(isolate);
    v8::Local<v8::Function> f;
    ok = ok && fn(HostLog, nullptr, &f) && core->Set(ctx, Str(isolate, "log"), f).FromMaybe(false);
    ok = ok && fn(HostError, nullptr, &f) && core->Set(ctx, Str(isolate, "error"), f).FromMaybe(false);
    ok = ok && fn(HostCallDone, nullptr, &f) && core->Set(ctx, Str(isolate, "callDone"), f).FromMaybe(false);
    ok = ok && hosts->Set(ctx, 0, core).FromMaybe(false);
  }
  for (size_t i = 0; ok && i < rt->n_libs; i++) {
    const sbx_library *lib = rt->libs[i];
    v8::Local<v8::Object> h = v8::Object::New(isolate);
    for (size_t k = 0; ok && k < lib->n_fns; k++) {
      const sbx__fnrec *rec = &rt->fns[rt->fn_first[i] + k];
      v8::Local<v8::Function> f;
      if (rec->def->flags & SBX__FN_BUILTIN) {
        uintptr_t id = (uintptr_t)rec->def->ud;
        ok = id > 0 && id < SBX__B_N && fn(kBuiltins[id], rec, &f);
      } else {
        ok = fn(HostDispatch, rec, &f);
      }
      ok = ok && h->Set(ctx, Str(isolate, rec->def->name), f).FromMaybe(false);
    }
    v8::Local<v8::Value> config = v8::Undefined(isolate);
    if (ok && lib->config) ok = FromSbx(isolate, ctx, lib->config, 0).ToLocal(&config);
    ok = ok && hosts->Set(ctx, (uint32_t)i + 1, h).FromMaybe(false) &&
         configs->Set(ctx, (uint32_t)i + 1, config).FromMaybe(false);
  }
  std::shared_ptr<v8::BackingStore> io_store = v8::ArrayBuffer::NewBackingStore(isolate, SBX__IO_N * sizeof(double));
  v8::Local<v8::Value> attach, ret;
  v8::Local<v8::Value> argv[3] = {hosts, v8::ArrayBuffer::New(isolate, io_store), configs};
  if (!ok || !ctx->Global()->Get(ctx, Str(isolate, "__isoworld_attach")).ToLocal(&attach) || !attach->IsFunction() ||
      !attach.As<v8::Function>()->Call(ctx, v8::Undefined(isolate), 3, argv).ToLocal(&ret) || !ret->IsObject()) {
    if (tc.HasCaught() && !tc.HasTerminated()) {
      char *t = ValueText(isolate, ctx, tc.Exception());
      size_t n = (t ? strlen(t) : 0) + 64;
      *error = static_cast<char *>(malloc(n));
      if (*error) snprintf(*error, n, "a library failed to attach: %s", t ? t : "?");
      free(t);
    } else {
      *error = strdup(tc.HasTerminated() ? "terminated while attaching the libraries"
                                         : "the prelude did not attach (snapshot mismatch)");
    }
    return false;
  }
  v8::Local<v8::Object> api = ret.As<v8::Object>();
  v8::Global<v8::Function> *slots[7] = {&iso->fn_tick, &iso->fn_end, &iso->fn_salvage, &iso->fn_run,
                                        &iso->fn_entry, &iso->fn_call, &iso->fn_timers};
  const char *names[7] = {"tick", "end", "salvage", "run", "entry", "call", "timers"};
  for (int i = 0; i < 7; i++) {
    v8::Local<v8::Value> f;
    if (!api->Get(ctx, Str(isolate, names[i])).ToLocal(&f) || !f->IsFunction()) {
      *error = strdup("the core has no entry points (snapshot mismatch)");
      return false;
    }
    slots[i]->Reset(isolate, f.As<v8::Function>());
  }
  iso->context.Reset(isolate, ctx);
  iso->io_store = io_store;
  iso->io = static_cast<double *>(io_store->Data());
  return true;
}

// The text of a caught exception: its stack (cleaned of sandbox frames) or message.
char *ExceptionText(v8::Isolate *isolate, v8::Local<v8::Context> ctx, v8::TryCatch &tc) {
  v8::Local<v8::Value> st;
  char *t;
  if (tc.StackTrace(ctx).ToLocal(&st) && st->IsString()) t = ValueText(isolate, ctx, st);
  else t = ValueText(isolate, ctx, tc.Exception());
  CleanStackText(t);
  return t;
}

void RunCommands(sbx__iso *iso, sbx__run *run, v8::Local<v8::Context> ctx) {
  v8::Isolate *isolate = iso->isolate;
  run->commands_run = true;
  for (size_t i = 0; i < run->in->n_commands; i++) {
    const char *expr = run->in->commands[i];
    if (!expr) continue;
    v8::HandleScope hs(isolate);
    v8::TryCatch tc(isolate);
    v8::ScriptOrigin origin(isolate, Str(isolate, "<console>"));
    v8::ScriptCompiler::Source src(Str(isolate, expr), origin);
    v8::Local<v8::Script> script;
    v8::Local<v8::Value> result;
    char *text;
    if (v8::ScriptCompiler::Compile(ctx, &src).ToLocal(&script) && script->Run(ctx).ToLocal(&result)) {
      text = ValueText(isolate, ctx, result);
    } else {
      if (tc.HasTerminated()) return;
      text = ExceptionText(isolate, ctx, tc);
    }
    if (text) {
      sbx__run_log(run, SBX_RESULT, text, strlen(text), false);
      free(text);
    }
  }
}

// ------------------------------------------------------------ the drain

double NowEpochMs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

bool TimerDue(sbx__iso *iso) {
  double due = iso->io[SBX__IO_TIMER];
  return due != 0 && due <= NowEpochMs();
}

// Is there work a drain round would do now? The cheap test every run makes.
bool WorkReady(sbx__iso *iso, sbx__run *run) {
  return __atomic_load_n(&run->vm->mb->count, __ATOMIC_ACQUIRE) > 0 || TimerDue(iso) ||
         (run->vm->rt->n_drains && sbx__run_libs_ready(run));
}

// Settles promises of completed async host functions, and starts queued host -> isolate
// calls. What is left when the run is terminated goes back to the mailbox.
void ProcessMail(sbx__iso *iso, sbx__run *run, v8::Local<v8::Context> ctx, v8::TryCatch &tc) {
  v8::Isolate *isolate = iso->isolate;
  sbx_vm *vm = run->vm;
  sbx__mail *m = sbx__mailbox_take(vm->mb);
  while (m) {
    if (Terminating(isolate, tc)) {
      // Put the rest back, in order, for a later run.
      sbx__mail *rest = m;
      while (rest) {
        sbx__mail *next = rest->next;
        rest->next = nullptr;
        sbx__mailbox_push(vm->mb, rest);
        rest = next;
      }
      return;
    }
    sbx__mail *next = m->next;
    v8::HandleScope hs(isolate);
    if (m->kind == SBX__MB_CALL) {
      sbx__hcall *c = m->call;
      m->call = nullptr;
      c->next = vm->inflight;
      vm->inflight = c;
      v8::Local<v8::Value> args;
      if (!FromSbx(isolate, ctx, c->args, 0).ToLocal(&args)) {
        if (!Terminating(isolate, tc)) {
          tc.Reset();
          sbx__vm_call_finish(vm, c->id, SBX_INVALID, nullptr, "the arguments could not be copied into the VM");
        }
      } else {
        v8::Local<v8::Value> argv[3] = {v8::Integer::NewFromUnsigned(isolate, c->id), Str(isolate, c->name), args};
        v8::Local<v8::Value> r;
        Ignore(iso->fn_call.Get(isolate)->Call(ctx, v8::Undefined(isolate), 3, argv).ToLocal(&r));
      }
    } else {
      auto it = iso->promises.find(m->id);
      if (it != iso->promises.end()) {
        v8::Local<v8::Promise::Resolver> res = it->second.Get(isolate);
        iso->promises.erase(it);
        if (m->kind == SBX__MB_RESOLVE) {
          v8::Local<v8::Value> jv;
          if (FromSbx(isolate, ctx, m->value, 0).ToLocal(&jv)) {
            Ignore(res->Resolve(ctx, jv));
          } else if (!Terminating(isolate, tc)) {
            v8::Local<v8::Value> e = tc.Exception();
            tc.Reset();
            Ignore(res->Reject(ctx, e));
          }
        } else {
          Ignore(res->Reject(ctx, v8::Exception::Error(Str(isolate, m->message ? m->message : "error"))));
        }
      }
    }
    sbx__mail_free(m);
    m = next;
  }
}

// Pending foreground tasks (FinalizationRegistry, WebAssembly.compile, GC jobs), bounded;
// only when the isolate has some queued (CountingPlatform).
void PumpTasks(sbx__iso *iso, v8::TryCatch &tc) {
  if (iso->tasks->n.load(std::memory_order_acquire) <= 0) return;
  v8::Isolate *isolate = iso->isolate;
  for (int i = 0; i < 64 && !Terminating(isolate, tc) && v8::platform::PumpMessageLoop(g_platform.get(), isolate); i++)
    isolate->PerformMicrotaskCheckpoint();
}

// Up to `rounds` rounds of: microtasks, mailbox, due timers, libraries' work (workers),
// platform tasks. Stops at the first round that finds nothing to do. True if any work
// was done.
bool Drain(sbx__iso *iso, sbx__run *run, v8::Local<v8::Context> ctx, v8::TryCatch &tc, int rounds) {
  v8::Isolate *isolate = iso->isolate;
  bool any = false;
  for (int r = 0;; r++) {
    isolate->PerformMicrotaskCheckpoint();
    if (r >= rounds || Terminating(isolate, tc) || !WorkReady(iso, run)) break;
    if (__atomic_load_n(&run->vm->mb->count, __ATOMIC_ACQUIRE) > 0) ProcessMail(iso, run, ctx, tc);
    if (!Terminating(isolate, tc) && TimerDue(iso)) {
      v8::Local<v8::Value> ret;
      Ignore(iso->fn_timers.Get(isolate)->Call(ctx, v8::Undefined(isolate), 0, nullptr).ToLocal(&ret));
    }
    if (!Terminating(isolate, tc) && run->vm->rt->n_drains && sbx__run_libs_ready(run)) sbx__run_libs_drain(run);
    any = true;
  }
  PumpTasks(iso, tc);
  if (!iso->rejections.empty() && !Terminating(isolate, tc)) ReportRejections(iso, run, ctx);
  if (any) run->drained_work = true;
  return any;
}

// A ping pending when the run is about to stop executing JavaScript is answered: the VM
// is responsive again.
void AnswerPing(sbx__run *run) {
  if (__atomic_load_n(&run->vm->ping_at_ns, __ATOMIC_ACQUIRE)) sbx__vm_pong(run->vm);
}

void PongInterrupt(v8::Isolate *isolate, void *data) {
  sbx__iso *iso = static_cast<sbx__iso *>(data);
  sbx__run *run = iso->run;
  if (run && !sbx__run_abandoned(run)) sbx__vm_pong(run->vm);
}

// ------------------------------------------------------------ the operations of a run

// A tick: begin hooks and loop, drain, console commands, end hooks (Memory).
void OpTick(sbx__iso *iso, sbx__run *run, v8::Local<v8::Context> ctx, v8::TryCatch &tc) {
  v8::Isolate *isolate = iso->isolate;
  const sbx_tick_in *in = run->in;
  iso->io[SBX__IO_TIME] = (double)in->time;
  iso->io[SBX__IO_CPU_LIMIT] = in->cpu_limit_ms;
  iso->io[SBX__IO_TICK_LIMIT] = in->tick_limit_ms;
  iso->io[SBX__IO_BUCKET] = in->bucket;
  iso->io[SBX__IO_END] = 0;
  iso->io[SBX__IO_SEQ] += 1;
  v8::Local<v8::Value> r;
  char *loop_error = nullptr;
  bool finished = false;
  if (iso->fn_tick.Get(isolate)->Call(ctx, v8::Undefined(isolate), 0, nullptr).ToLocal(&r)) {
    if (r->IsString()) loop_error = Utf8Dup(isolate, r.As<v8::String>(), nullptr);
    if (!run->vm->entry_ran && !Terminating(isolate, tc)) {
      run->vm->entry_ran = true;
      if (run->vm->rt->n_after_start) sbx__vm_hook_after_start(run->vm);
    }
    isolate->PerformMicrotaskCheckpoint();
    if (!Terminating(isolate, tc)) {
      if (WorkReady(iso, run)) Drain(iso, run, ctx, tc, 16);
      else {
        PumpTasks(iso, tc);
        if (!iso->rejections.empty() && !Terminating(isolate, tc)) ReportRejections(iso, run, ctx);
      }
    }
    if (!Terminating(isolate, tc)) RunCommands(iso, run, ctx);
    bool live = !Terminating(isolate, tc);
    if (live && iso->io[SBX__IO_END] == 0) {
      finished = true;  // Memory and segments untouched: nothing to serialise
    } else if (live && iso->fn_end.Get(isolate)->Call(ctx, v8::Undefined(isolate), 0, nullptr).ToLocal(&r)) {
      finished = true;
    }
  }
  // Console commands run even when the loop ran out of CPU or wall time (vanilla drops
  // them and players never learn): with a budget of their own, after which the run
  // keeps the status it had.
  int reason = iso->kill_reason.load();
  if (!run->commands_run && in->n_commands && (reason == SBX_CPU_LIMIT || reason == SBX_WALL_LIMIT) &&
      !iso->heap_hit) {
    sbx__run_rearm(run, 100);
    isolate->CancelTerminateExecution();
    iso->kill_reason.store(0);
    {
      v8::TryCatch tc2(isolate);
      RunCommands(iso, run, ctx);
    }
    // The run keeps its first reason, unless the commands hit the heap limit.
    int again = iso->kill_reason.exchange(reason);
    if (again == SBX_HEAP_LIMIT) iso->kill_reason.store(again);
  }
  // A loop that ran out of time still hands over what it produced (lib.onRunSalvage:
  // a game's intents so far), with a small budget of its own. Memory is not saved.
  reason = iso->kill_reason.load();
  if (!finished && (reason == SBX_CPU_LIMIT || reason == SBX_WALL_LIMIT) && !iso->heap_hit &&
      iso->io[SBX__IO_END] != 0 && !sbx__run_abandoned(run)) {
    sbx__run_rearm(run, 20);
    isolate->CancelTerminateExecution();
    iso->kill_reason.store(0);
    {
      v8::TryCatch tc2(isolate);
      v8::Local<v8::Value> ignored;
      Ignore(iso->fn_salvage.Get(isolate)->Call(ctx, v8::Undefined(isolate), 0, nullptr).ToLocal(&ignored));
    }
    int again = iso->kill_reason.exchange(reason);
    if (again == SBX_HEAP_LIMIT) iso->kill_reason.store(again);
  }
  sbx__run_end(run);
  reason = iso->kill_reason.load();
  if (tc.HasTerminated() || isolate->IsExecutionTerminating() || reason) {
    run->status = reason ? reason : SBX_CPU_LIMIT;
    isolate->CancelTerminateExecution();
    free(loop_error);
    free(run->memory);
    run->memory = nullptr;
    run->memory_changed = false;
  } else if (tc.HasCaught()) {
    run->status = SBX_EXCEPTION;
    run->error = ExceptionText(isolate, ctx, tc);
    free(loop_error);
  } else if (loop_error) {
    run->status = SBX_EXCEPTION;
    run->error = loop_error;
  } else if (!finished) {
    run->status = SBX_EXCEPTION;
  }
}

// [error text] or [undefined, callable names] from core.run / core.entry.
void TakeRunResult(sbx__iso *iso, sbx__run *run, v8::Local<v8::Context> ctx, v8::Local<v8::Value> r) {
  v8::Isolate *isolate = iso->isolate;
  if (!r->IsArray()) return;
  v8::Local<v8::Array> a = r.As<v8::Array>();
  v8::Local<v8::Value> err, names;
  if (a->Get(ctx, 0).ToLocal(&err) && err->IsString()) {
    run->status = SBX_EXCEPTION;
    run->error = Utf8Dup(isolate, err.As<v8::String>(), nullptr);
    return;
  }
  if (a->Get(ctx, 1).ToLocal(&names)) {
    alignas(16) char first_chunk[1024];
  sbx__arena arena{nullptr, first_chunk, sizeof first_chunk};
    ToConv c{isolate, ctx, &arena};
    sbx_value v;
    if (ToSbx(c, names, &v, 0)) run->value = sbx_value_dup(&v);
    sbx__arena_release(&arena);
  }
}

// sbx_vm_run: the code as the body of a function, then core.run(fn).
void OpRun(sbx__iso *iso, sbx__run *run, v8::Local<v8::Context> ctx, v8::TryCatch &tc) {
  v8::Isolate *isolate = iso->isolate;
  v8::Local<v8::Function> fn;
  const char *name = run->src_name ? run->src_name : "main";
  if (!CompileModule(isolate, ctx, name, run->src, strlen(run->src), 0, &fn)) return;
  v8::Local<v8::Value> argv[1] = {fn}, r;
  if (iso->fn_run.Get(isolate)->Call(ctx, v8::Undefined(isolate), 1, argv).ToLocal(&r)) TakeRunResult(iso, run, ctx, r);
}

void OpEntry(sbx__iso *iso, sbx__run *run, v8::Local<v8::Context> ctx, v8::TryCatch &tc) {
  v8::Isolate *isolate = iso->isolate;
  v8::Local<v8::Value> argv[1] = {Str(isolate, run->src)}, r;
  if (iso->fn_entry.Get(isolate)->Call(ctx, v8::Undefined(isolate), 1, argv).ToLocal(&r))
    TakeRunResult(iso, run, ctx, r);
}

uint64_t MonoNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

// The monotonic time work becomes ready by itself (a timer, a worker's timer), capped
// at cap_ns; cap_ns when none.
uint64_t NextDueNs(sbx__iso *iso, sbx__run *run, uint64_t cap_ns) {
  double due = iso->io[SBX__IO_TIMER];
  sbx_vm *vm = run->vm;
  const sbx_runtime *rt = vm->rt;
  for (size_t i = 0; i < rt->n_drains; i++) {
    const sbx_library *lib = rt->libs[rt->drains[i]];
    const sbx__lib_ext *ext = static_cast<const sbx__lib_ext *>(lib->internal);
    if (ext->next_due) {
      double d = ext->next_due(vm, vm->states[rt->drains[i]]);
      if (d != 0 && (due == 0 || d < due)) due = d;
    }
  }
  if (due == 0) return cap_ns;
  double in_ms = due - NowEpochMs();
  uint64_t now = MonoNs();
  uint64_t at = in_ms <= 0 ? now : now + (uint64_t)(in_ms * 1e6);
  return at < cap_ns ? at : cap_ns;
}

// sbx_vm_call: drain until the call finished, sleeping between drains, until the wall
// deadline (the call's timeout).
void OpCall(sbx__iso *iso, sbx__run *run, v8::Local<v8::Context> ctx, v8::TryCatch &tc) {
  v8::Isolate *isolate = iso->isolate;
  for (;;) {
    Drain(iso, run, ctx, tc, 16);
    if (run->wait_done || Terminating(isolate, tc) || iso->kill_reason.load()) return;
    uint64_t deadline = run->wall_start_ns + run->wall_budget_ns;
    uint64_t now = MonoNs();
    if (now >= deadline) {
      sbx__iso_terminate(iso, SBX_WALL_LIMIT);
      return;
    }
    if (WorkReady(iso, run)) continue;
    iso->in_js.store(0);
    AnswerPing(run);
    sbx__vm_wait(run->vm, NextDueNs(iso, run, deadline));
    iso->in_js.store(1);
    if (__atomic_load_n(&run->vm->disposed, __ATOMIC_ACQUIRE)) {
      sbx__iso_terminate(iso, SBX_DISPOSED);
      return;
    }
  }
}

}  // namespace

// ------------------------------------------------------------ C interface

extern "C" int sbx__v8_start(const sbx_engine_options *opt) {
  if (g_platform) return SBX_OK;
  int pages = opt && opt->wasm_max_pages > 0 ? opt->wasm_max_pages : 256;
  char flags[512];
  snprintf(flags, sizeof flags,
           "%s --wasm-max-mem-pages=%d --enable-experimental-regexp-engine-on-excessive-backtracks "
           "--no-expose-gc --stack-size=984 --no-verify-snapshot-checksum",
           opt && opt->multi_threaded_gc ? "" : "--single-threaded-gc", pages);
  v8::V8::SetFlagsFromString(flags);
  if (opt && opt->v8_flags) v8::V8::SetFlagsFromString(opt->v8_flags);
  v8::V8::InitializeICUDefaultLocation("");
  g_platform = v8::platform::NewDefaultPlatform();
  g_counting.reset(new CountingPlatform(g_platform.get()));
  v8::V8::InitializePlatform(g_counting.get());
  if (!v8::V8::Initialize()) {
    v8::V8::DisposePlatform();
    g_counting.reset();
    g_platform.reset();
    return SBX_ENGINE;
  }
  snprintf(g_version, sizeof g_version, "%s", v8::V8::GetVersion());
  return SBX_OK;
}

extern "C" void sbx__v8_stop(void) {
  if (!g_platform) return;
  v8::V8::Dispose();
  v8::V8::DisposePlatform();
  g_counting.reset();
  g_platform.reset();
}

extern "C" const char *sbx__v8_version(void) { return g_version[0] ? g_version : v8::V8::GetVersion(); }

extern "C" int sbx__v8_snapshot(const char *core_js, sbx_runtime *rt, char **err) {
  rt->blob = nullptr;
  rt->blob_len = 0;
  if (err) *err = nullptr;
  if (!g_platform) return SBX_ENGINE;
  v8::StartupData data{nullptr, 0};
  {
    v8::SnapshotCreator creator;
    v8::Isolate *isolate = creator.GetIsolate();
    bool ok = true;
    {
      v8::Isolate::Scope is(isolate);
      v8::HandleScope hs(isolate);
      v8::Local<v8::Context> ctx = v8::Context::New(isolate);
      v8::Context::Scope cs(ctx);
      v8::TryCatch tc(isolate);
      auto fail = [&](const char *what) {
        ok = false;
        if (!err) return;
        char *t = tc.HasCaught() ? ExceptionText(isolate, ctx, tc) : nullptr;
        size_t n = strlen(what) + (t ? strlen(t) : 0) + 8;
        *err = static_cast<char *>(malloc(n));
        if (*err) snprintf(*err, n, "%s: %s", what, t ? t : "failed");
        free(t);
      };
      auto script = [&](const char *name, const char *src) {
        v8::ScriptOrigin origin(isolate, Str(isolate, name));
        v8::ScriptCompiler::Source source(Str(isolate, src), origin);
        v8::Local<v8::Script> s;
        v8::Local<v8::Value> r;
        return v8::ScriptCompiler::Compile(ctx, &source).ToLocal(&s) && s->Run(ctx).ToLocal(&r);
      };
      if (!script("isoworld:core", core_js)) fail("the sandbox core");
      v8::Local<v8::Value> define;
      if (ok && (!ctx->Global()->Get(ctx, Str(isolate, "__isoworld_define")).ToLocal(&define) || !define->IsFunction()))
        fail("the sandbox core has no __isoworld_define");
      for (size_t i = 0; ok && i < rt->n_libs; i++) {
        const sbx_library *lib = rt->libs[i];
        char origin_name[160];
        snprintf(origin_name, sizeof origin_name, "isoworld:lib/%s", lib->name ? lib->name : "?");
        v8::Local<v8::Value> body = v8::Undefined(isolate);
        if (lib->js && (lib->flags & SBX_LIB_SCRIPT)) {
          if (!script(origin_name, lib->js)) {
            fail(origin_name);
            break;
          }
        } else if (lib->js) {
          v8::Local<v8::String> params[2] = {Str(isolate, "lib"), Str(isolate, "core")};
          v8::ScriptOrigin origin(isolate, Str(isolate, origin_name));
          v8::ScriptCompiler::Source source(Str(isolate, lib->js), origin);
          v8::Local<v8::Function> f;
          if (!v8::ScriptCompiler::CompileFunction(ctx, &source, 2, params).ToLocal(&f)) {
            fail(origin_name);
            break;
          }
          body = f;
        }
        v8::Local<v8::Value> argv[2] = {Str(isolate, lib->name ? lib->name : ""), body}, r;
        if (!define.As<v8::Function>()->Call(ctx, v8::Undefined(isolate), 2, argv).ToLocal(&r)) fail(origin_name);
      }
      v8::Local<v8::Value> r;
      if (ok && !define.As<v8::Function>()->Call(ctx, v8::Undefined(isolate), 0, nullptr).ToLocal(&r))
        fail("the sandbox core");
      if (ok) creator.SetDefaultContext(ctx);
    }
    if (!ok) return SBX_SNAPSHOT;  // ~SnapshotCreator disposes the isolate
    data = creator.CreateBlob(v8::SnapshotCreator::FunctionCodeHandling::kKeep);
  }
  if (!data.data || data.raw_size <= 0) return SBX_SNAPSHOT;
  rt->blob = malloc((size_t)data.raw_size);
  if (!rt->blob) {
    delete[] data.data;
    return SBX_NOMEM;
  }
  memcpy(rt->blob, data.data, (size_t)data.raw_size);
  rt->blob_len = (size_t)data.raw_size;
  delete[] data.data;
  return SBX_OK;
}

extern "C" int sbx__iso_new(const sbx__iso_config *cfg, sbx__iso **out) {
  *out = nullptr;
  if (!g_platform) return SBX_ENGINE;
  auto *iso = new (std::nothrow) sbx__iso();
  if (!iso) return SBX_NOMEM;
  iso->heap_limit = cfg->heap_limit;
  iso->external_limit = cfg->external_limit;
  iso->max_eval = cfg->max_eval;
  iso->alloc = new (std::nothrow) CountingAllocator(cfg->external_limit);
  if (!iso->alloc) {
    delete iso;
    return SBX_NOMEM;
  }
  iso->blob.data = static_cast<const char *>(cfg->blob);
  iso->blob.raw_size = (int)cfg->blob_len;
  v8::Isolate::CreateParams p;
  p.snapshot_blob = &iso->blob;
  p.array_buffer_allocator = iso->alloc;
  p.constraints.ConfigureDefaultsFromHeapSize(0, cfg->heap_limit);
  iso->isolate = v8::Isolate::New(p);
  if (!iso->isolate) {
    delete iso->alloc;
    delete iso;
    return SBX_ENGINE;
  }
  v8::Isolate *isolate = iso->isolate;
  iso->tasks = g_counting->Pending(isolate);
  {
    v8::Locker lk(isolate);
    isolate->SetData(0, iso);
    isolate->AddNearHeapLimitCallback(NearHeapLimit, iso);
    isolate->SetMicrotasksPolicy(v8::MicrotasksPolicy::kExplicit);
    isolate->SetModifyCodeGenerationFromStringsCallback(CodeGenFromStrings);
    isolate->SetAllowAtomicsWait(false);
    isolate->SetPromiseRejectCallback(OnPromiseReject);
  }
  *out = iso;
  return SBX_OK;
}

extern "C" void sbx__iso_free(sbx__iso *iso) {
  if (!iso) return;
  if (iso->isolate) {
    {
      v8::Locker lk(iso->isolate);
      v8::Isolate::Scope is(iso->isolate);
      iso->fn_tick.Reset();
      iso->fn_end.Reset();
      iso->fn_salvage.Reset();
      iso->fn_run.Reset();
      iso->fn_entry.Reset();
      iso->fn_call.Reset();
      iso->fn_timers.Reset();
      iso->context.Reset();
      iso->promises.clear();
      iso->rejections.clear();
      iso->io_store.reset();
    }
    v8::platform::NotifyIsolateShutdown(g_platform.get(), iso->isolate);
    iso->isolate->Dispose();
    g_counting->Forget(iso->isolate);
  }
  delete iso->alloc;
  delete iso;
}

extern "C" void sbx__iso_terminate(sbx__iso *iso, int reason) {
  int expected = 0;
  iso->kill_reason.compare_exchange_strong(expected, reason);
  iso->isolate->TerminateExecution();
}

extern "C" void sbx__iso_ping(sbx__iso *iso, sbx_vm *vm) {
  if (iso && iso->in_js.load()) iso->isolate->RequestInterrupt(PongInterrupt, iso);
  else sbx__vm_pong(vm);
}

extern "C" void sbx__iso_run(sbx__iso *iso, sbx__run *run) {
  v8::Isolate *isolate = iso->isolate;
  v8::Locker locker(isolate);
  v8::Isolate::Scope is(isolate);
  char here;
  isolate->SetStackLimit(reinterpret_cast<uintptr_t>(&here) - run->stack_room);
  isolate->CancelTerminateExecution();
  iso->kill_reason.store(0);
  iso->heap_hit = false;
  iso->run = run;
  iso->in_js.store(1);
  v8::HandleScope hs(isolate);

  sbx__run_begin(run);
  if (run->new_global || iso->context.IsEmpty()) {
    char *err = nullptr;
    uint64_t g0 = sbx__now_ns(CLOCK_MONOTONIC);
    sbx__vm_fail_calls(run->vm, SBX_DISPOSED, "the VM's global was reset");
    bool ok = NewGlobal(iso, run, &err);
    run->global_ns = sbx__now_ns(CLOCK_MONOTONIC) - g0;
    if (!ok) {
      run->status = SBX_ENGINE;
      run->error = err;
      sbx__run_end(run);
      iso->in_js.store(0);
      AnswerPing(run);
      iso->run = nullptr;
      return;
    }
    run->created_global = true;
    run->vm->entry_ran = false;
    if (run->vm->rt->n_start) sbx__vm_hook_start(run->vm);
  }
  v8::Local<v8::Context> ctx = iso->context.Get(isolate);
  {
    v8::Context::Scope cs(ctx);
    v8::TryCatch tc(isolate);
    if (run->op == SBX__OP_TICK) {
      OpTick(iso, run, ctx, tc);
    } else {
      switch (run->op) {
        case SBX__OP_RUN:
          OpRun(iso, run, ctx, tc);
          break;
        case SBX__OP_ENTRY:
          OpEntry(iso, run, ctx, tc);
          break;
        default:
          break;
      }
      if (run->op == SBX__OP_CALL) OpCall(iso, run, ctx, tc);
      else if (run->op != SBX__OP_INIT && !Terminating(isolate, tc)) Drain(iso, run, ctx, tc, 16);
      if ((run->op == SBX__OP_RUN || run->op == SBX__OP_ENTRY) && run->status == SBX_OK && !run->vm->entry_ran &&
          !Terminating(isolate, tc)) {
        run->vm->entry_ran = true;
        if (run->vm->rt->n_after_start) sbx__vm_hook_after_start(run->vm);
      }
      sbx__run_end(run);
      int reason = iso->kill_reason.load();
      if (tc.HasTerminated() || isolate->IsExecutionTerminating() || reason) {
        run->status = reason ? reason : SBX_CPU_LIMIT;
        if (run->op == SBX__OP_CALL && run->status == SBX_WALL_LIMIT) run->status = SBX_TIMEOUT;
        isolate->CancelTerminateExecution();
      } else if (tc.HasCaught() && run->status == SBX_OK) {
        run->status = SBX_EXCEPTION;
        run->error = ExceptionText(isolate, ctx, tc);
      } else if (run->op == SBX__OP_CALL && run->status == SBX_OK && run->wait_done) {
        run->status = run->result_status;
      }
    }
    // The vm's pending state for sbx_vm_has_pending, read between runs.
    run->vm->next_timer_ms = iso->io[SBX__IO_TIMER];
    run->vm->open_promises = iso->promises.size();
  }
  iso->in_js.store(0);
  AnswerPing(run);
  // The full heap statistics cost ~5% of an empty run (every space, the string table,
  // global handles), so ticks read them when they can matter: the heap-limit callback
  // fired, the run was long enough to have allocated a lot (a single allocation past
  // the limit takes tens of milliseconds), or every 16th run. Gradual growth is caught
  // by the NearHeapLimitCallback. The general API's runs likewise (a host -> isolate call
  // is a run: the statistics were a fifth of its cost).
  bool check = iso->heap_hit || run->status == SBX_HALTED ||
               (run->wall_end_ns - run->wall_start_ns) > 1000000 || (++iso->runs & 15) == 1;
  if (check) {
    v8::HeapStatistics st;
    isolate->GetHeapStatistics(&st);
    // Wasm memories bypass the allocator; V8 counts them as external memory.
    size_t external = iso->alloc->used() > st.external_memory() ? iso->alloc->used() : st.external_memory();
    iso->last_heap = {st.used_heap_size(), st.total_heap_size(), iso->heap_limit, external};
    if (iso->heap_hit || st.used_heap_size() > iso->heap_limit || external > iso->external_limit) {
      run->status = SBX_HEAP_LIMIT;
      run->dispose_iso = true;
    }
  } else {
    iso->last_heap.external = iso->alloc->used();
    if (iso->alloc->used() > iso->external_limit) {
      run->status = SBX_HEAP_LIMIT;
      run->dispose_iso = true;
    }
  }
  run->heap = iso->last_heap;
  if (run->status == SBX_HALTED || run->status == SBX_RESPONSE_LIMIT) run->dispose_iso = true;
  iso->run = nullptr;
}
