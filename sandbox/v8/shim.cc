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
//  - termination requested during a builtin that then returns normally stays pending
//    and kills the next entry: every run starts with CancelTerminateExecution.
//  - isolates move between worker threads: every entry takes a v8::Locker and sets the
//    stack limit for the thread it is on.
//  - eval/new Function of a huge string parses for seconds without an interrupt check:
//    code generation from strings is refused over a size.
//  - stale platform tasks of a dead isolate must not run on a new one at the same
//    address: NotifyIsolateShutdown before Dispose.

#include <libplatform/libplatform.h>
#include <v8.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
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

std::unique_ptr<v8::Platform> g_platform;
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

}  // namespace

// ------------------------------------------------------------ the isolate

struct sbx__iso {
  v8::Isolate *isolate = nullptr;
  CountingAllocator *alloc = nullptr;
  v8::StartupData blob{};
  v8::Global<v8::Context> context;
  v8::Global<v8::Function> fn_tick, fn_end;
  std::shared_ptr<v8::BackingStore> io_store;  // the prelude's `io` Float64Array
  double *io = nullptr;
  std::atomic<int> kill_reason{0};
  size_t heap_limit = 0, external_limit = 0, max_eval = 0;
  bool heap_hit = false;
  uint64_t runs = 0;
  sbx_heap last_heap{};  // from the last full heap check
  sbx__run *run = nullptr;  // the run in progress, for host callbacks
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
  if (!v8::String::NewFromUtf8(isolate, s, v8::NewStringType::kNormal, (int)len).ToLocal(&out))
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

// Small stack buffer for console lines; heap for long ones.
struct Utf8Buf {
  char small[512];
  char *p = small;
  size_t len = 0;
  Utf8Buf(v8::Isolate *isolate, v8::Local<v8::String> s) {
    int n = s->Utf8Length(isolate);
    if ((size_t)n >= sizeof small) {
      p = static_cast<char *>(malloc((size_t)n + 1));
      if (!p) { p = small; n = 0; }
    }
    s->WriteUtf8(isolate, p, n, nullptr, v8::String::NO_NULL_TERMINATION);
    p[n] = 0;
    len = (size_t)n;
  }
  ~Utf8Buf() { if (p != small) free(p); }
};

// ------------------------------------------------------------ host functions

void HostLog(const v8::FunctionCallbackInfo<v8::Value> &info) {
  v8::Isolate *isolate = info.GetIsolate();
  sbx__iso *iso = IsoOf(isolate);
  if (!iso->run || info.Length() < 2 || !info[1]->IsString()) return;
  int level = info[0]->IsInt32() ? info[0].As<v8::Int32>()->Value() : 0;
  if (level < SBX_LOG || level > SBX_RESULT) level = SBX_LOG;
  bool unsafe = info.Length() > 2 && info[2]->IsTrue();
  Utf8Buf b(isolate, info[1].As<v8::String>());
  sbx__console_push(&iso->run->console, (sbx_level)level, b.p, b.len, unsafe);
}

void ThrowError(v8::Isolate *isolate, const char *msg) {
  isolate->ThrowException(v8::Exception::Error(Str(isolate, msg)));
}

// require()'s back end: the module's function (module, exports, require), an
// ArrayBuffer for a binary module, or undefined when there is no such module.
void HostCompile(const v8::FunctionCallbackInfo<v8::Value> &info) {
  v8::Isolate *isolate = info.GetIsolate();
  sbx__iso *iso = IsoOf(isolate);
  if (!iso->run || info.Length() < 1 || !info[0]->IsString()) return;
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  Utf8Buf name(isolate, info[0].As<v8::String>());
  const sbx_module *m = sbx__code_find(iso->run->code, name.p, name.len);
  if (!m) return;
  if (m->binary) {
    std::unique_ptr<v8::BackingStore> bs = v8::ArrayBuffer::NewBackingStore(isolate, m->len);
    if (!bs || (m->len && !bs->Data())) {
      ThrowError(isolate, "Array buffer allocation failed");
      return;
    }
    if (m->len) memcpy(bs->Data(), m->source, m->len);
    info.GetReturnValue().Set(v8::ArrayBuffer::New(isolate, std::move(bs)));
    return;
  }
  if (m->len > (size_t)v8::String::kMaxLength) {
    ThrowError(isolate, "module too large");
    return;
  }
  v8::ScriptOrigin origin(isolate, Str(isolate, m->name));
  v8::ScriptCompiler::Source src(Str(isolate, m->source, m->len), origin);
  v8::Local<v8::String> params[3] = {Str(isolate, "module"), Str(isolate, "exports"),
                                     Str(isolate, "require")};
  v8::TryCatch tc(isolate);
  v8::Local<v8::Function> fn;
  if (v8::ScriptCompiler::CompileFunction(ctx, &src, 3, params).ToLocal(&fn)) {
    info.GetReturnValue().Set(fn);
    return;
  }
  if (!tc.HasCaught() || tc.HasTerminated()) {
    tc.ReThrow();
    return;
  }
  // A SyntaxError carries no location in its stack: give it the Node-style one
  // ("main:1\n<line>\n   ^\n\nSyntaxError: ...") so the player sees module and line.
  v8::Local<v8::Value> ex = tc.Exception();
  v8::Local<v8::Message> msg = tc.Message();
  if (!msg.IsEmpty() && ex->IsObject()) {
    int line = msg->GetLineNumber(ctx).FromMaybe(0);
    int col = msg->GetStartColumn(ctx).FromMaybe(0);
    v8::Local<v8::String> src_line;
    char *sl = nullptr;
    if (msg->GetSourceLine(ctx).ToLocal(&src_line)) sl = Utf8Dup(isolate, src_line, nullptr);
    char *text = ValueText(isolate, ctx, ex);
    size_t cap = 64 + strlen(m->name) + (sl ? strlen(sl) : 0) + (size_t)col + (text ? strlen(text) : 0);
    char *stack = static_cast<char *>(malloc(cap));
    if (stack) {
      if (sl && strlen(sl) < 200 && col < 200) {
        int off = snprintf(stack, cap, "%s:%d\n%s\n", m->name, line, sl);
        for (int i = 0; i < col && (size_t)off + 2 < cap; i++) stack[off++] = ' ';
        snprintf(stack + off, cap - (size_t)off, "^\n\n%s", text ? text : "SyntaxError");
      } else {
        snprintf(stack, cap, "%s\n    at %s:%d:%d", text ? text : "SyntaxError", m->name, line, col + 1);
      }
      ex.As<v8::Object>()->Set(ctx, Str(isolate, "stack"), Str(isolate, stack)).Check();
      free(stack);
    }
    free(sl);
    free(text);
  }
  tc.ReThrow();
}

void HostCpu(const v8::FunctionCallbackInfo<v8::Value> &info) {
  sbx__iso *iso = IsoOf(info.GetIsolate());
  info.GetReturnValue().Set(iso->run ? sbx__run_cpu_ms(iso->run) : 0.0);
}

void HostHeap(const v8::FunctionCallbackInfo<v8::Value> &info) {
  v8::Isolate *isolate = info.GetIsolate();
  sbx__iso *iso = IsoOf(isolate);
  v8::HeapStatistics hs;
  isolate->GetHeapStatistics(&hs);
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  v8::Local<v8::Object> o = v8::Object::New(isolate);
  auto set = [&](const char *k, double v) { o->Set(ctx, Str(isolate, k), v8::Number::New(isolate, v)).Check(); };
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
  info.GetReturnValue().Set(o);
}

void HostMemory(const v8::FunctionCallbackInfo<v8::Value> &info) {
  v8::Isolate *isolate = info.GetIsolate();
  sbx__iso *iso = IsoOf(isolate);
  if (!iso->run || !iso->run->in->memory) return;
  const sbx_tick_in *in = iso->run->in;
  info.GetReturnValue().Set(Str(isolate, in->memory, in->memory_len));
}

void HostSegments(const v8::FunctionCallbackInfo<v8::Value> &info) {
  v8::Isolate *isolate = info.GetIsolate();
  sbx__iso *iso = IsoOf(isolate);
  if (!iso->run || !iso->run->in->n_segments) return;
  const sbx_tick_in *in = iso->run->in;
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  v8::Local<v8::Array> a = v8::Array::New(isolate, (int)(2 * in->n_segments));
  uint32_t k = 0;
  for (size_t i = 0; i < in->n_segments; i++) {
    const sbx_segment *sg = &in->segments[i];
    if (sg->id < 0 || sg->id >= SBX_SEGMENT_IDS || (!sg->data && sg->len)) continue;
    a->Set(ctx, k++, v8::Integer::New(isolate, sg->id)).Check();
    a->Set(ctx, k++, Str(isolate, sg->data ? sg->data : "", sg->len)).Check();
  }
  info.GetReturnValue().Set(a);
}

void HostHalt(const v8::FunctionCallbackInfo<v8::Value> &info) {
  sbx__iso *iso = IsoOf(info.GetIsolate());
  sbx__iso_terminate(iso, SBX_HALTED);
}

// A fresh global from the snapshot, attached to the host.
bool NewGlobal(sbx__iso *iso, char **error) {
  v8::Isolate *isolate = iso->isolate;
  v8::HandleScope hs(isolate);
  iso->fn_tick.Reset();
  iso->fn_end.Reset();
  iso->context.Reset();
  iso->io_store.reset();
  iso->io = nullptr;
  v8::Local<v8::Context> ctx = v8::Context::New(isolate);
  if (ctx.IsEmpty()) {
    *error = strdup("could not create a context");
    return false;
  }
  v8::Context::Scope cs(ctx);
  // V8 asks CodeGenFromStrings only when the context disallows code generation.
  ctx->AllowCodeGenerationFromStrings(false);
  v8::TryCatch tc(isolate);
  v8::Local<v8::Object> host = v8::Object::New(isolate);
  auto add = [&](const char *name, v8::FunctionCallback cb) {
    v8::Local<v8::Function> f =
        v8::Function::New(ctx, cb, v8::Local<v8::Value>(), 0, v8::ConstructorBehavior::kThrow).ToLocalChecked();
    host->Set(ctx, Str(isolate, name), f).Check();
  };
  add("log", HostLog);
  add("compile", HostCompile);
  add("memory", HostMemory);
  add("segments", HostSegments);
  add("cpu", HostCpu);
  add("heap", HostHeap);
  add("halt", HostHalt);
  v8::Local<v8::Value> attach, ret;
  std::shared_ptr<v8::BackingStore> io_store = v8::ArrayBuffer::NewBackingStore(isolate, 8 * sizeof(double));
  if (!io_store || !io_store->Data()) {
    *error = strdup("could not allocate the shared tick buffer");
    return false;
  }
  v8::Local<v8::Value> argv[2] = {host, v8::ArrayBuffer::New(isolate, io_store)};
  if (!ctx->Global()->Get(ctx, Str(isolate, "__isoworld_attach")).ToLocal(&attach) || !attach->IsFunction() ||
      !attach.As<v8::Function>()->Call(ctx, v8::Undefined(isolate), 2, argv).ToLocal(&ret) || !ret->IsObject()) {
    *error = strdup("the prelude did not attach (snapshot mismatch)");
    return false;
  }
  v8::Local<v8::Object> api = ret.As<v8::Object>();
  v8::Local<v8::Value> t, e;
  if (!api->Get(ctx, Str(isolate, "tick")).ToLocal(&t) || !t->IsFunction() ||
      !api->Get(ctx, Str(isolate, "end")).ToLocal(&e) || !e->IsFunction()) {
    *error = strdup("the prelude has no tick/end");
    return false;
  }
  iso->fn_tick.Reset(isolate, t.As<v8::Function>());
  iso->fn_end.Reset(isolate, e.As<v8::Function>());
  iso->context.Reset(isolate, ctx);
  iso->io_store = io_store;
  iso->io = static_cast<double *>(io_store->Data());
  return true;
}

// The text of a caught exception: its stack (cleaned of prelude frames) or message.
char *ExceptionText(v8::Isolate *isolate, v8::Local<v8::Context> ctx, v8::TryCatch &tc) {
  v8::Local<v8::Value> st;
  if (tc.StackTrace(ctx).ToLocal(&st) && st->IsString()) return ValueText(isolate, ctx, st);
  return ValueText(isolate, ctx, tc.Exception());
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
      sbx__console_push(&run->console, SBX_RESULT, text, strlen(text), false);
      free(text);
    }
  }
}

// end()'s [memory, segments written, active ids] into the run.
void TakeEndResult(sbx__iso *iso, sbx__run *run, v8::Local<v8::Context> ctx, v8::Local<v8::Array> a) {
  v8::Isolate *isolate = iso->isolate;
  const sbx_tick_in *in = run->in;
  v8::Local<v8::Value> mem, segs, active;
  if (a->Get(ctx, 0).ToLocal(&mem) && mem->IsString()) {
    v8::Local<v8::String> s = mem.As<v8::String>();
    size_t max = in->memory_max ? in->memory_max : (size_t)2 * 1024 * 1024;
    if ((size_t)s->Length() > max) {
      char msg[160];
      snprintf(msg, sizeof msg, "Memory size is over the %zu KB limit (%d characters): this tick's changes are not saved",
               max / 1024, s->Length());
      sbx__console_push(&run->console, SBX_ERROR, msg, strlen(msg), false);
    } else {
      run->memory = Utf8Dup(isolate, s, &run->memory_len);
      run->memory_changed = run->memory != nullptr;
    }
  }
  if (a->Get(ctx, 1).ToLocal(&segs) && segs->IsArray()) {
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
  if (a->Get(ctx, 2).ToLocal(&active) && active->IsArray()) {
    v8::Local<v8::Array> aa = active.As<v8::Array>();
    run->active_segments_set = true;
    for (uint32_t i = 0; i < aa->Length() && run->n_active_segments < SBX_SEGMENTS_ACTIVE_MAX; i++) {
      v8::Local<v8::Value> id;
      if (aa->Get(ctx, i).ToLocal(&id) && id->IsInt32()) {
        int sid = id.As<v8::Int32>()->Value();
        if (sid >= 0 && sid < SBX_SEGMENT_IDS) run->active_segments[run->n_active_segments++] = sid;
      }
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
  v8::V8::InitializePlatform(g_platform.get());
  if (!v8::V8::Initialize()) {
    v8::V8::DisposePlatform();
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
  g_platform.reset();
}

extern "C" const char *sbx__v8_version(void) { return g_version[0] ? g_version : v8::V8::GetVersion(); }

extern "C" int sbx__v8_snapshot(const char *prelude, const char *extra, void **blob, size_t *len, char **err) {
  *blob = nullptr;
  *len = 0;
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
      const char *names[2] = {"isoworld:prelude", "isoworld:extra"};
      const char *srcs[2] = {prelude, extra};
      for (int i = 0; i < 2 && ok; i++) {
        if (!srcs[i]) continue;
        v8::TryCatch tc(isolate);
        v8::ScriptOrigin origin(isolate, Str(isolate, names[i]));
        v8::ScriptCompiler::Source src(Str(isolate, srcs[i]), origin);
        v8::Local<v8::Script> script;
        v8::Local<v8::Value> r;
        if (!v8::ScriptCompiler::Compile(ctx, &src).ToLocal(&script) || !script->Run(ctx).ToLocal(&r)) {
          ok = false;
          if (err) {
            char *t = ExceptionText(isolate, ctx, tc);
            *err = t;
          }
        }
      }
      if (ok) creator.SetDefaultContext(ctx);
    }
    if (!ok) return SBX_SNAPSHOT;  // ~SnapshotCreator disposes the isolate
    data = creator.CreateBlob(v8::SnapshotCreator::FunctionCodeHandling::kKeep);
  }
  if (!data.data || data.raw_size <= 0) return SBX_SNAPSHOT;
  *blob = malloc((size_t)data.raw_size);
  if (!*blob) {
    delete[] data.data;
    return SBX_NOMEM;
  }
  memcpy(*blob, data.data, (size_t)data.raw_size);
  *len = (size_t)data.raw_size;
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
  {
    v8::Locker lk(isolate);
    isolate->SetData(0, iso);
    isolate->AddNearHeapLimitCallback(NearHeapLimit, iso);
    isolate->SetMicrotasksPolicy(v8::MicrotasksPolicy::kExplicit);
    isolate->SetModifyCodeGenerationFromStringsCallback(CodeGenFromStrings);
    isolate->SetAllowAtomicsWait(false);
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
      iso->context.Reset();
      iso->io_store.reset();
    }
    v8::platform::NotifyIsolateShutdown(g_platform.get(), iso->isolate);
    iso->isolate->Dispose();
  }
  delete iso->alloc;
  delete iso;
}

extern "C" void sbx__iso_terminate(sbx__iso *iso, int reason) {
  int expected = 0;
  iso->kill_reason.compare_exchange_strong(expected, reason);
  iso->isolate->TerminateExecution();
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
  v8::HandleScope hs(isolate);

  sbx__run_begin(run);
  bool finished = false;
  if (run->new_global || iso->context.IsEmpty()) {
    char *err = nullptr;
    uint64_t g0 = sbx__now_ns(CLOCK_MONOTONIC);
    bool ok = NewGlobal(iso, &err);
    run->global_ns = sbx__now_ns(CLOCK_MONOTONIC) - g0;
    if (!ok) {
      run->status = SBX_ENGINE;
      run->error = err;
      sbx__run_end(run);
      iso->run = nullptr;
      return;
    }
    run->created_global = true;
  }
  v8::Local<v8::Context> ctx = iso->context.Get(isolate);
  {
    v8::Context::Scope cs(ctx);
    v8::TryCatch tc(isolate);
    const sbx_tick_in *in = run->in;
    iso->io[0] = (double)in->time;
    iso->io[1] = in->cpu_limit_ms;
    iso->io[2] = in->tick_limit_ms;
    iso->io[3] = in->bucket;
    v8::Local<v8::Value> r;
    char *loop_error = nullptr;
    if (iso->fn_tick.Get(isolate)->Call(ctx, v8::Undefined(isolate), 0, nullptr).ToLocal(&r)) {
      if (r->IsString()) loop_error = Utf8Dup(isolate, r.As<v8::String>(), nullptr);
      isolate->PerformMicrotaskCheckpoint();
      // Pending foreground tasks (FinalizationRegistry, WebAssembly.compile), bounded.
      for (int i = 0; i < 64 && !tc.HasTerminated() && !isolate->IsExecutionTerminating() &&
                      v8::platform::PumpMessageLoop(g_platform.get(), isolate);
           i++) {
        isolate->PerformMicrotaskCheckpoint();
      }
      if (!isolate->IsExecutionTerminating() && !tc.HasTerminated()) RunCommands(iso, run, ctx);
      v8::Local<v8::Value> m;
      bool live = !isolate->IsExecutionTerminating() && !tc.HasTerminated();
      if (live && iso->io[4] == 0) {
        finished = true;  // Memory and segments untouched: nothing to serialise
      } else if (live && iso->fn_end.Get(isolate)->Call(ctx, v8::Undefined(isolate), 0, nullptr).ToLocal(&m) &&
                 m->IsArray()) {
        finished = true;
        TakeEndResult(iso, run, ctx, m.As<v8::Array>());
      }
    }
    // Console commands run even when the loop ran out of CPU or wall time (vanilla drops
    // them and players never learn): with a budget of their own, after which the run
    // keeps the status it had.
    int reason = iso->kill_reason.load();
    if (!run->commands_run && in->n_commands &&
        (reason == SBX_CPU_LIMIT || reason == SBX_WALL_LIMIT) && !iso->heap_hit) {
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
  // The full heap statistics cost ~5% of an empty run (every space, the string table,
  // global handles), so they are read when they can matter: the heap-limit callback
  // fired, the run was long enough to have allocated a lot (a single allocation past
  // the limit takes tens of milliseconds), or every 16th run. Gradual growth is caught
  // by the NearHeapLimitCallback.
  bool check = iso->heap_hit || run->status == SBX_HALTED || (run->wall_end_ns - run->wall_start_ns) > 1000000 ||
               (++iso->runs & 15) == 1;
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
  if (run->status == SBX_HALTED) run->dispose_iso = true;
  iso->run = nullptr;
}
