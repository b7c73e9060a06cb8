// Statement normalization for the analysis cache: a single pass of PostgreSQL's lexical rules
// (scan.l) that replaces each literal constant with `$N` (numbered after the statement's own
// highest `$n`) and drops comments, so that statements differing only in literals share one
// cached analysis. The literal values are returned so the cached analysis can be re-applied.
//
// Why not pg_query_scan(): it builds a protobuf of every token and costs microseconds; this pass
// costs ~100 ns for a typical statement, and tests check its literal positions against
// pg_query_scan() over a corpus so the two agree on what a literal is.
//
// API: Normalize(sql) -> NormalizedStatement {text, literals, max_param}.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shardgate::routing {

struct Literal {
  enum class Kind : uint8_t { kInteger, kFloat, kString };
  Kind kind = Kind::kInteger;
  std::string value;  // the number's text, or the string's decoded content
  uint32_t offset = 0;  // byte offset of the literal in the original statement
  uint32_t length = 0;  // its length in the original statement
  // kInteger from the normalizer: the value, when it fits an int64 (else has_int is false and
  // readers parse `value`, as they do for literals from elsewhere).
  bool has_int = false;
  int64_t int_value = 0;
};

struct NormalizedStatement {
  // The cache key: the SQL with literals as $N and comments removed, then a NUL and max_param
  // (so that "$4" keys differ when $4 is a literal in one and a client parameter in the other);
  // text.c_str() is therefore the normalized SQL alone, as the parser wants it.
  std::string text;
  std::vector<Literal> literals;  // literal i became $(max_param + 1 + i)
  int max_param = 0;              // highest $n written by the client (0 = none)
  bool unterminated = false;      // an open quote or comment at the end (the parser will fail)
  // An estimate of the parse tree's depth (bracket levels plus chained operators such as
  // 1 + 1 + ...): deep trees cost the protobuf decoder quadratic time, so they are refused
  // before parsing.
  int nesting = 0;
};

// The deepest statement the analyzer parses; deeper ones are refused with 54001.
inline constexpr int kMaxNesting = 1000;

// Never fails: text the lexer does not understand is copied through unchanged, and the parser
// reports the error later. Literals kept in place (not replaced): typed literals such as
// DATE '2020-01-01' or INTERVAL '1 day' (a parameter is not valid there), bit strings (B'..',
// X'..'), U&'..' and N'..' strings.
NormalizedStatement Normalize(std::string_view sql);

// Fills `out` (reusing its buffers) instead of returning a new value: the hot path.
void NormalizeInto(std::string_view sql, NormalizedStatement& out);

}  // namespace shardgate::routing
