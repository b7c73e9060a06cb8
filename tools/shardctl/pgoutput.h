// A decoder of pgoutput (protocol version 1), the logical replication output plugin built
// into PostgreSQL: the messages shardctl applies while catching a reshard up.
//
// API: DecodePgoutput(bytes) -> one PgoutputMessage, or 08P01 for a malformed one. Tuples keep
// values in text form (what pgoutput v1 sends), so they can be re-sent as SQL literals.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace shardgate::tools {

struct PgoutputColumn {
  std::string name;
  uint32_t type_oid = 0;
  bool key = false;  // part of the replica identity (the primary key by default)
};

// One column's value in a tuple.
struct PgoutputValue {
  enum class Kind : char { kNull = 'n', kUnchanged = 'u', kText = 't' };
  Kind kind = Kind::kNull;
  std::string text;
};
using PgoutputTuple = std::vector<PgoutputValue>;

struct PgoutputMessage {
  enum class Type : char {
    kBegin = 'B', kCommit = 'C', kRelation = 'R', kInsert = 'I', kUpdate = 'U', kDelete = 'D',
    kTruncate = 'T', kType = 'Y', kOrigin = 'O', kMessage = 'M'
  };
  Type type = Type::kBegin;
  uint64_t lsn = 0;      // Begin: final LSN of the transaction; Commit: the commit's LSN
  uint64_t end_lsn = 0;  // Commit: end of the commit record (where the slot may advance to)
  int64_t timestamp = 0;  // Begin/Commit: microseconds since 2000-01-01
  uint32_t relation = 0;  // Relation/Insert/Update/Delete: the relation's OID
  // Relation
  std::string schema, name;
  std::vector<PgoutputColumn> columns;
  // Insert/Update: the new row; Update/Delete: the old key ('K') or old row ('O'), if sent.
  PgoutputTuple new_tuple;
  std::optional<PgoutputTuple> old_tuple;
  // Truncate: the relations.
  std::vector<uint32_t> relations;
  // Message (pg_logical_emit_message, with the 'messages' option): prefix and content.
  std::string prefix, content;
};

absl::StatusOr<PgoutputMessage> DecodePgoutput(std::string_view bytes);

}  // namespace shardgate::tools
