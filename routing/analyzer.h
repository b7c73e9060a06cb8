// SQL analysis with PostgreSQL's own parser (libpg_query): statement kind, tables, read/write,
// shard-key values (or the $n carrying them), join equalities and what a cross-shard merge
// needs. The result does not depend on any shard map; see query_info.h for its shape.
//
// API: Analyze(sql) parses the statement as written; AnalyzeNormalized(norm) parses a
// normalized statement (literals as $N) so the result can be cached and re-applied with the
// literals of later statements (analysis_cache.h). Unparseable SQL is 42601.
#pragma once

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "routing/normalize.h"
#include "routing/query_info.h"

namespace shardgate::routing {

absl::StatusOr<std::shared_ptr<const Analysis>> Analyze(std::string_view sql);

// `norm.text.c_str()` is parsed; ParamRefs above norm.max_param are literal slots, and
// `norm.literals` are consulted only where the analysis depends on a value (ORDER BY 1).
absl::StatusOr<std::shared_ptr<const Analysis>> AnalyzeNormalized(const NormalizedStatement& norm);

}  // namespace shardgate::routing
