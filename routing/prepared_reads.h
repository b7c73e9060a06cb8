// prepare_reads: which simple-protocol statements the proxy may run as a statement prepared on
// the server, their literals becoming parameters, and with which parameter types, so that the
// server's answer (column types, values, errors' SQLSTATEs) is the one the statement as written
// gets. Only reads whose every literal is compared with a column (`WHERE id = 42`,
// `id IN (1, 2)`) qualify: there the column gives an untyped string its type, as it does the
// literal; a literal elsewhere (select list, LIMIT, ORDER BY 1) could change meaning.
//
// API: ReadParameterTypes(analysis, literals, max_param, types) -> bool; PreparableRead(analysis).
#pragma once

#include <cstdint>
#include <span>

#include "absl/container/inlined_vector.h"
#include "routing/normalize.h"
#include "routing/query_info.h"

namespace shardgate::routing {

// PostgreSQL's type of a literal constant (make_const): an integer that fits int4 is int4, one
// that fits int8 is int8, other numbers are numeric, a quoted string is unknown (0: the server
// infers it from the column, as it types the literal).
uint32_t LiteralParameterType(const Literal& literal);

// True when `analysis` is one read that may run as a statement prepared on the server: a
// SELECT that writes nothing (no FOR UPDATE, no nextval() and the like) and names its columns
// (not SELECT *: an ALTER TABLE would change a prepared statement's result type). The
// extended protocol's unnamed statements that are such reads run prepared as they are.
bool PreparableRead(const Analysis& analysis);

// True when the one statement analysed may run with literal i as parameter $(i + 1); `types`
// then holds their types. False for several statements, client parameters, writes, SELECT *
// (an ALTER TABLE would change a prepared statement's result type), a negated or array literal,
// or a literal that is not a column's comparison value.
bool ReadParameterTypes(const Analysis& analysis, std::span<const Literal> literals, int max_param,
                        absl::InlinedVector<uint32_t, 8>& types);

}  // namespace shardgate::routing
