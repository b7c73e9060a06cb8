// Fan-out executor: parallel legs on the worker's thread, a merger in the middle, the client at
// the end. See fanout.h for the contract.
#include "proxy/fanout.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "protocol/encoder.h"
#include "protocol/frame_reader.h"
#include "protocol/messages.h"
#include "proxy/io.h"
#include "proxy/strings.h"

namespace shardgate::proxy {

namespace p = protocol;

namespace {

constexpr size_t kClientFlushBytes = 64 * 1024;
constexpr uint32_t kMaxServerMessage = 1u << 30;

// The state the legs and the merging loop share (one thread: no locks).
struct Shared {
  explicit Shared(const asio::any_io_executor& ex) : progress(ex), space(ex) {
    progress.expires_at(asio::steady_timer::time_point::max());
    space.expires_at(asio::steady_timer::time_point::max());
  }
  asio::steady_timer progress;  // legs -> merging loop: something happened
  asio::steady_timer space;     // merging loop -> legs: the merger took rows
  bool dirty = false;           // set with every progress wake-up (no lost signals)
  int running = 0;
  bool discard = false;         // drop rows (LIMIT reached, client gone or merge failed)
  bool failed = false;          // client gone or merge failed: not even descriptions count
  absl::Status merge_error;
  absl::flat_hash_set<std::string> notices;
  std::string notice_out;
  FanOutResult result;
  std::vector<bool> shard_done;

  void Wake() {
    dirty = true;
    progress.cancel();
  }
};

void NoteTag(FanOutResult& r, std::string_view tag) {
  std::string_view command = tag;
  int64_t count = 0;
  const size_t space = tag.rfind(' ');
  bool has_count = false;
  if (space != std::string_view::npos &&
      absl::SimpleAtoi(AbslView(tag.substr(space + 1)), &count)) {
    command = tag.substr(0, space);
    has_count = true;
  }
  if (r.command.empty()) r.command = std::string(command);
  if (has_count) {
    r.rows += count;
    r.has_rows = true;
  }
}

absl::Status ErrorStatus(std::string_view body) {
  auto fields = p::ParseErrorFields(body);
  if (!fields.ok()) return fields.status();
  return PgStatus(fields->Get('C'), fields->Get('M'), fields->Get('H'));
}

void ShardDone(Shared& s, Merger& merger, int index) {
  if (s.shard_done[index]) return;
  s.shard_done[index] = true;
  merger.OnShardDone(index);
}

// One leg: send its requests, read its answers up to the last ReadyForQuery.
asio::awaitable<void> RunLeg(std::shared_ptr<Shared> s, FanOutLeg* leg, int index,
                             Merger* merger, std::chrono::milliseconds timeout) {
  ServerConnection& conn = *leg->conn;
  auto fail = [&](absl::Status why) {
    conn.MarkBroken();
    if (leg->error.ok()) {
      leg->error = why;
      p::AppendError(leg->error_message, ToPgError(why));
    }
    ShardDone(*s, *merger, index);
  };
  std::string out;
  for (const FanOutRequest& r : leg->requests) out += r.messages;
  {
    auto [ec, n] = co_await asio::async_write(conn.stream(), asio::buffer(out), kTuple);
    if (ec) {
      fail(LostConnection(conn, ec.message()));
      --s->running;
      s->Wake();
      co_return;
    }
  }
  size_t request = 0;
  ReadBuffer& in = conn.in();
  while (request < leg->requests.size()) {
    const bool forward = leg->requests[request].forward;
    p::FrameResult r = p::ReadFrame(in.Data(), kMaxServerMessage);
    if (r.status == p::FrameStatus::kError) {
      fail(r.error);
      break;
    }
    if (r.status == p::FrameStatus::kNeedMore) {
      s->Wake();
      Deadline deadline(conn.socket().get_executor(), timeout, [&conn] {
        boost::system::error_code ignored;
        conn.socket().cancel(ignored);
      });
      auto [ec, n] = co_await conn.stream().async_read_some(in.Prepare(r.need), kTuple);
      if (deadline.expired()) {
        fail(PgStatus("57014", "canceling statement due to statement timeout"));
        break;
      }
      if (ec) {
        fail(LostConnection(conn, ec.message()));
        break;
      }
      in.Commit(n);
      continue;
    }
    const p::Frame& f = r.frame;
    if (forward && f.type == p::be::kDataRow && !s->discard && !merger->CanAccept(index)) {
      // Back-pressure: leave the row in the buffer until the merger has room.
      s->Wake();
      co_await s->space.async_wait(kTuple);
      continue;
    }
    absl::Status st;
    switch (f.type) {
      case p::be::kDataRow:
        if (forward && !s->discard) st = merger->OnDataRow(index, f.body);
        break;
      case p::be::kRowDescription:
        if (forward) {
          s->result.described = true;
          if (!s->failed) st = merger->OnRowDescription(index, f.body);
        }
        break;
      case p::be::kNoData:
        if (forward) s->result.no_data = true;
        break;
      case p::be::kCommandComplete:
        if (forward) {
          auto cc = p::ParseCommandComplete(f.body);
          if (cc.ok()) NoteTag(s->result, cc->tag);
          ShardDone(*s, *merger, index);
        }
        break;
      case p::be::kEmptyQuery:
        if (forward) {
          s->result.empty_query = true;
          ShardDone(*s, *merger, index);
        }
        break;
      case p::be::kErrorResponse:
        if (leg->error.ok()) {
          leg->error = ErrorStatus(f.body);
          leg->error_message.assign(f.whole);
        }
        ShardDone(*s, *merger, index);
        break;
      case p::be::kNoticeResponse:
        if (forward && s->notices.insert(std::string(f.body)).second) {
          s->notice_out.append(f.whole);
        }
        break;
      case p::be::kReadyForQuery:
        conn.set_tx_status(f.body.empty() ? 'I' : f.body[0]);
        ++request;
        break;
      case p::be::kCopyInResponse:
      case p::be::kCopyOutResponse:
      case p::be::kCopyBothResponse:
        st = PgStatus("0A000", "COPY cannot run on several shards in one statement",
                      "COPY FROM STDIN into a sharded table is split by the proxy; COPY TO "
                      "needs a shard key condition or a hint.");
        in.Consume(f.whole.size());
        fail(st);
        request = leg->requests.size();
        continue;
      default:  // ParseComplete, BindComplete, ParameterDescription, ParameterStatus...
        break;
    }
    in.Consume(f.whole.size());
    if (!st.ok() && s->merge_error.ok()) {
      s->merge_error = st;
      s->discard = s->failed = true;
    }
  }
  conn.Touch();
  --s->running;
  s->Wake();
}

}  // namespace

std::string MergedTag(const FanOutResult& r) {
  if (!r.has_rows) return r.command;
  return absl::StrCat(r.command, " ", r.rows);
}

asio::awaitable<FanOutResult> RunFanOut(std::span<FanOutLeg* const> legs, Merger& merger,
                                        FanOutSink& sink, std::chrono::milliseconds timeout) {
  auto ex = co_await asio::this_coro::executor;
  auto s = std::make_shared<Shared>(ex);
  s->shard_done.assign(legs.size(), false);
  s->running = static_cast<int>(legs.size());
  for (size_t i = 0; i < legs.size(); ++i) {
    legs[i]->error = absl::OkStatus();
    legs[i]->error_message.clear();
    asio::co_spawn(ex, RunLeg(s, legs[i], static_cast<int>(i), &merger, timeout),
                   asio::detached);
  }
  bool header_sent = false;
  // Moves what the merger has ready (and the description first) to the client buffer.
  auto emit = [&] {
    if (!s->notice_out.empty()) {
      sink.out->append(s->notice_out);
      s->notice_out.clear();
    }
    if (s->failed) return;
    if (merger.described() && !header_sent) {
      if (sink.row_description) sink.out->append(merger.ClientRowDescription());
      header_sent = true;
    }
    if (s->discard || !header_sent) return;
    absl::Status st = merger.Emit(*sink.out);
    if (!st.ok()) {
      s->merge_error = st;
      s->discard = s->failed = true;
    } else if (merger.LimitReached()) {
      s->discard = true;  // the rest is read and dropped
    }
  };
  for (;;) {
    emit();
    if (sink.out->size() >= kClientFlushBytes && !s->result.client_gone) {
      if (!co_await sink.flush()) {
        s->result.client_gone = true;
        s->discard = s->failed = true;
      }
    }
    s->space.cancel();
    if (s->running == 0) break;
    if (!s->dirty) co_await s->progress.async_wait(kTuple);
    s->dirty = false;
  }
  emit();  // what the last legs delivered while the loop was flushing
  if (!s->notice_out.empty()) sink.out->append(s->notice_out);
  FanOutResult result = std::move(s->result);
  for (FanOutLeg* leg : legs) {
    if (!leg->error.ok()) result.any_leg_failed = true;
  }
  if (!s->merge_error.ok()) {
    result.error = s->merge_error;
    p::AppendError(result.error_message, ToPgError(s->merge_error));
  } else {
    for (FanOutLeg* leg : legs) {
      if (!leg->error.ok()) {
        result.error = leg->error;
        result.error_message = leg->error_message;
        break;
      }
    }
  }
  if (result.command == "SELECT") result.rows = merger.rows_emitted();
  co_return result;
}

asio::awaitable<FanOutResult> RunFanOutQuietly(std::span<FanOutLeg* const> legs,
                                               std::chrono::milliseconds timeout) {
  routing::MergePlan concatenate;
  concatenate.visible_columns = -1;
  Merger merger(concatenate, static_cast<int>(legs.size()), std::nullopt, std::nullopt);
  std::string dropped;
  FanOutSink sink{&dropped, []() -> asio::awaitable<bool> { co_return true; }, false};
  co_return co_await RunFanOut(legs, merger, sink, timeout);
}

}  // namespace shardgate::proxy
