// Unit tests of CopySplitter and CopyFormatFor: rows and keys as PostgreSQL 15 reads COPY text
// and CSV data, however the client's CopyData messages cut the stream.
#include "proxy/copy_split.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/support/status_matchers.h"

namespace shardgate::proxy {
namespace {

using ::shardgate::testing::HasSqlState;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

using Key = std::optional<std::string>;
using Row = std::pair<std::string, Key>;

struct Result {
  absl::Status status;
  std::vector<Row> rows;
};

CopyFormat Format(std::string_view format, std::string_view delimiter = "",
                  std::string_view null_string = "", bool header = false, int key_column = 0) {
  absl::StatusOr<CopyFormat> f = CopyFormatFor(format, delimiter, null_string, header, key_column);
  EXPECT_OK(f);
  return f.ok() ? *f : CopyFormat{};
}

// Feeds `chunks` one Feed call each, then Finish; stops at the first error.
Result Run(const CopyFormat& format, const std::vector<std::string_view>& chunks) {
  CopySplitter splitter(format);
  Result result;
  auto on_row = [&](std::string_view row, std::optional<std::string_view> key) {
    result.rows.emplace_back(std::string(row), key ? Key(std::string(*key)) : std::nullopt);
    return absl::OkStatus();
  };
  for (std::string_view chunk : chunks) {
    result.status = splitter.Feed(chunk, on_row);
    if (!result.status.ok()) return result;
  }
  result.status = splitter.Finish(on_row);
  return result;
}

Result RunWhole(const CopyFormat& format, std::string_view data) { return Run(format, {data}); }

// The result for `data` must not depend on where the messages cut it: every single split point,
// and one byte per Feed.
void ExpectSplitInvariant(const CopyFormat& format, std::string_view data) {
  const Result whole = RunWhole(format, data);
  for (size_t cut = 0; cut <= data.size(); ++cut) {
    const Result split = Run(format, {data.substr(0, cut), data.substr(cut)});
    EXPECT_EQ(split.rows, whole.rows) << "cut at " << cut;
    EXPECT_EQ(split.status.ok(), whole.status.ok()) << "cut at " << cut;
    EXPECT_EQ(SqlState(split.status), SqlState(whole.status)) << "cut at " << cut;
  }
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < data.size(); ++i) bytes.push_back(data.substr(i, 1));
  const Result one_by_one = Run(format, bytes);
  EXPECT_EQ(one_by_one.rows, whole.rows);
  EXPECT_EQ(SqlState(one_by_one.status), SqlState(whole.status));
}

// ---- CopyFormatFor ------------------------------------------------------------------------

TEST(CopyFormatForTest, Defaults) {
  CopyFormat text = Format("text");
  EXPECT_FALSE(text.csv);
  EXPECT_EQ(text.delimiter, '\t');
  EXPECT_EQ(text.null_string, "\\N");
  CopyFormat csv = Format("CSV", "", "", true, 2);
  EXPECT_TRUE(csv.csv);
  EXPECT_EQ(csv.delimiter, ',');
  EXPECT_EQ(csv.null_string, "");
  EXPECT_EQ(csv.quote, '"');
  EXPECT_EQ(csv.escape, '"');
  EXPECT_TRUE(csv.header);
  EXPECT_EQ(csv.key_column, 2);
  CopyFormat custom = Format("text", "|", "NULL");
  EXPECT_EQ(custom.delimiter, '|');
  EXPECT_EQ(custom.null_string, "NULL");
}

TEST(CopyFormatForTest, BinaryIsRefusedWithHint) {
  absl::StatusOr<CopyFormat> f = CopyFormatFor("binary", "", "", false, 0);
  EXPECT_THAT(f, HasSqlState("0A000"));
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("BINARY"));
  EXPECT_EQ(Hint(f.status()), "use text or CSV");
}

struct BadOptions {
  std::string_view format, delimiter, null_string;
  std::string_view sqlstate;
};

class CopyFormatForErrorTest : public ::testing::TestWithParam<BadOptions> {};

TEST_P(CopyFormatForErrorTest, RefusedAsPostgresDoes) {
  const BadOptions& o = GetParam();
  EXPECT_THAT(CopyFormatFor(o.format, o.delimiter, o.null_string, false, 0),
              HasSqlState(std::string(o.sqlstate)));
}

INSTANTIATE_TEST_SUITE_P(
    Table, CopyFormatForErrorTest,
    ::testing::Values(BadOptions{"xml", "", "", "22023"},       // unknown format
                      BadOptions{"text", "ab", "", "0A000"},    // multi-byte delimiter
                      BadOptions{"text", "\n", "", "22023"},    // newline delimiter
                      BadOptions{"csv", "\r", "", "22023"},     // CR delimiter
                      BadOptions{"text", "\\", "", "22023"},    // backslash delimiter in text
                      BadOptions{"text", "a", "", "22023"},     // letter delimiter in text
                      BadOptions{"csv", "\"", "", "22023"},     // delimiter == quote
                      BadOptions{"text", "", "x\ny", "22023"},  // newline in NULL
                      BadOptions{"text", ",", "a,b", "22023"},  // delimiter in NULL
                      BadOptions{"csv", "", "\"", "22023"}));   // quote in NULL

TEST(CopyFormatForTest, NegativeKeyColumnIsACallerBug) {
  EXPECT_THAT(CopyFormatFor("text", "", "", false, -1),
              ::shardgate::testing::StatusIs(absl::StatusCode::kInvalidArgument));
}

// ---- text format ---------------------------------------------------------------------------

TEST(CopySplitTextTest, RowsAndKeys) {
  const std::string data = "1\talice\n2\tbob\n";
  Result r = RunWhole(Format("text"), data);
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("1\talice\n", Key("1")), Pair("2\tbob\n", Key("2"))));
  ExpectSplitInvariant(Format("text"), data);
}

TEST(CopySplitTextTest, KeyInAnotherColumn) {
  Result r = RunWhole(Format("text", "", "", false, 2), "a\tb\tkey\td\n");
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("a\tb\tkey\td\n", Key("key"))));
  r = RunWhole(Format("text", "", "", false, 1), "a\tlast\n");
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("a\tlast\n", Key("last"))));
}

TEST(CopySplitTextTest, WholeRowsAreViewsOfTheInput) {
  const std::string data = "1\tx\n2\ty\n";
  CopySplitter splitter(Format("text"));
  int rows = 0;
  ASSERT_OK(splitter.Feed(data, [&](std::string_view row, std::optional<std::string_view> key) {
    EXPECT_GE(row.data(), data.data());
    EXPECT_LE(row.data() + row.size(), data.data() + data.size());
    EXPECT_TRUE(key.has_value());
    EXPECT_GE(key->data(), data.data());  // an unescaped key is a view too
    ++rows;
    return absl::OkStatus();
  }));
  EXPECT_EQ(rows, 2);
}

TEST(CopySplitTextTest, EscapesAreDecodedInTheKeyOnly) {
  // \t \n \\ octal, hex, an escaped delimiter, a backslash before an ordinary char, "\x" alone.
  const std::string data =
      "a\\tb\t1\n"
      "a\\nb\t2\n"
      "a\\\\b\t3\n"
      "\\101\\7\\0101\t4\n"
      "\\x41\\x4a2\\xg\t5\n"
      "a\\\tb\t6\n"
      "\\q\\N\\b\\f\\r\\v\t7\n";
  Result r = RunWhole(Format("text"), data);
  ASSERT_OK(r.status);
  ASSERT_EQ(r.rows.size(), 7u);
  EXPECT_EQ(r.rows[0].second, Key("a\tb"));
  EXPECT_EQ(r.rows[1].second, Key("a\nb"));
  EXPECT_EQ(r.rows[2].second, Key("a\\b"));
  EXPECT_EQ(r.rows[3].second, Key(std::string("A\a\x08") + "1"));
  EXPECT_EQ(r.rows[4].second, Key("AJ2xg"));
  EXPECT_EQ(r.rows[5].second, Key("a\tb"));
  EXPECT_EQ(r.rows[6].second, Key("qN\b\f\r\v"));
  EXPECT_EQ(r.rows[6].first, "\\q\\N\\b\\f\\r\\v\t7\n");  // bytes untouched
  ExpectSplitInvariant(Format("text"), data);
}

TEST(CopySplitTextTest, EscapedNewlineStaysInTheRow) {
  // PostgreSQL takes a backslash followed by a newline as a newline inside the field.
  const std::string data = "x\\\ny\t1\nz\t2\n";
  Result r = RunWhole(Format("text"), data);
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("x\\\ny\t1\n", Key("x\ny")), Pair("z\t2\n", Key("z"))));
  ExpectSplitInvariant(Format("text"), data);
}

TEST(CopySplitTextTest, NullKeys) {
  Result r = RunWhole(Format("text"), "\\N\tx\n\\\\N\ty\nN\tz\n\tw\n");
  ASSERT_OK(r.status);
  ASSERT_EQ(r.rows.size(), 4u);
  EXPECT_EQ(r.rows[0].second, std::nullopt);
  EXPECT_EQ(r.rows[1].second, Key("\\N"));  // an escaped backslash then N is data
  EXPECT_EQ(r.rows[2].second, Key("N"));
  EXPECT_EQ(r.rows[3].second, Key(""));  // empty is not NULL in text
}

TEST(CopySplitTextTest, CustomDelimiterAndNullString) {
  const CopyFormat f = Format("text", "|", "nil", false, 1);
  const std::string data = "a|nil|c\nb|k\\|ey|c\nc|\\N|x\n";
  Result r = RunWhole(f, data);
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("a|nil|c\n", std::nullopt),
                                  Pair("b|k\\|ey|c\n", Key("k|ey")),
                                  Pair("c|\\N|x\n", Key("N"))));
  ExpectSplitInvariant(f, data);
}

TEST(CopySplitTextTest, CrLfIsKeptAndNotPartOfTheKey) {
  const std::string data = "a\tk1\r\nb\tk2\r\n";
  const CopyFormat f = Format("text", "", "", false, 1);
  Result r = RunWhole(f, data);
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("a\tk1\r\n", Key("k1")), Pair("b\tk2\r\n", Key("k2"))));
  ExpectSplitInvariant(f, data);
  // An escaped carriage return before the newline is data.
  r = RunWhole(Format("text"), "k\\\r\n");
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("k\\\r\n", Key("k\r"))));
}

TEST(CopySplitTextTest, BareCarriageReturnIsRefused) {
  // With "\r" line endings PostgreSQL would cut rows where we do not: refuse, never misroute.
  Result r = RunWhole(Format("text"), "1\ta\r2\tb\r");
  EXPECT_THAT(r.status, HasSqlState("22P04"));
  EXPECT_THAT(r.rows, IsEmpty());
  ExpectSplitInvariant(Format("text"), "1\ta\r2\tb\r");
  EXPECT_THAT(RunWhole(Format("csv"), "1,a\n2,b\rc\n").status, HasSqlState("22P04"));
  EXPECT_THAT(RunWhole(Format("csv"), "\\.\r2\n").status, HasSqlState("22P04"));
  // Escaped (text) or quoted (CSV) it is data.
  ASSERT_OK(RunWhole(Format("text"), "a\\\rb\n").status);
  ASSERT_OK(RunWhole(Format("csv"), "\"a\rb\"\n").status);
  // A lone '\r' ending the last line is a line ending, as in PostgreSQL.
  r = RunWhole(Format("text", "", "", false, 1), "a\tk\r");
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("a\tk\r", Key("k"))));
}

TEST(CopySplitTextTest, EscapedNewlineEndingTheLastRowIsData) {
  Result r = RunWhole(Format("text", "", "", false, 1), "a\tk\\\\\\\n");
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("a\tk\\\\\\\n", Key("k\\\n"))));
}

TEST(CopySplitTextTest, LastRowWithoutNewlineAtFinish) {
  const std::string data = "1\ta\n2\tb";
  Result r = RunWhole(Format("text"), data);
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("1\ta\n", Key("1")), Pair("2\tb", Key("2"))));
  ExpectSplitInvariant(Format("text"), data);
}

TEST(CopySplitTextTest, EndMarkerStopsTheData) {
  const std::string data = "1\ta\n\\.\n2\tignored\n";
  Result r = RunWhole(Format("text"), data);
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("1\ta\n", Key("1"))));
  ExpectSplitInvariant(Format("text"), data);
  r = RunWhole(Format("text"), "1\ta\r\n\\.\r\n");
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("1\ta\r\n", Key("1"))));
}

TEST(CopySplitTextTest, EndMarkerAfterDataOnTheSameLine) {
  // PostgreSQL 15 takes "abc" as the last row; the shard gets the marker too and ends there.
  const std::string data = "1\ta\nk\tabc\\.\nnot\tread\n";
  Result r = RunWhole(Format("text"), data);
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("1\ta\n", Key("1")), Pair("k\tabc\\.\n", Key("k"))));
  ExpectSplitInvariant(Format("text"), data);
}

TEST(CopySplitTextTest, EscapedBackslashDotIsData) {
  Result r = RunWhole(Format("text"), "\\\\.\t1\n");
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("\\\\.\t1\n", Key("\\."))));
}

TEST(CopySplitTextTest, CorruptEndMarker) {
  ExpectSplitInvariant(Format("text"), "1\ta\n\\.x\n");
  EXPECT_THAT(RunWhole(Format("text"), "1\ta\n\\.x\n").status, HasSqlState("22P04"));
  // At the end of the data without its newline, as PostgreSQL: corrupt.
  Result r = RunWhole(Format("text"), "1\ta\n\\.");
  EXPECT_THAT(r.status, HasSqlState("22P04"));
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("end-of-copy marker corrupt"));
  EXPECT_THAT(RunWhole(Format("text"), "\\.\rx").status, HasSqlState("22P04"));
}

TEST(CopySplitTextTest, HeaderIsSkipped) {
  const CopyFormat f = Format("text", "", "", true, 0);
  const std::string data = "id\tname\n1\ta\n";
  Result r = RunWhole(f, data);
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("1\ta\n", Key("1"))));
  ExpectSplitInvariant(f, data);
}

TEST(CopySplitTextTest, TooFewFields) {
  const CopyFormat f = Format("text", "", "", false, 2);
  Result r = RunWhole(f, "a\tb\tc\na\tb\n");
  EXPECT_THAT(r.status, HasSqlState("22P04"));
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("missing data for column 3"));
  EXPECT_EQ(Detail(r.status), "COPY data line 2");
  EXPECT_EQ(r.rows.size(), 1u);
  ExpectSplitInvariant(f, "a\tb\tc\na\tb\n");

  CopyFormat named = f;
  named.key_column_name = "tenant";
  r = RunWhole(named, "a\n");
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("missing data for column \"tenant\""));
  // An escaped delimiter does not separate fields.
  EXPECT_THAT(RunWhole(f, "a\tb\\\tc\n").status, HasSqlState("22P04"));
}

TEST(CopySplitTextTest, EmptyInputAndEmptyLines) {
  Result r = RunWhole(Format("text"), "");
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, IsEmpty());
  r = RunWhole(Format("text"), "\n\n");
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("\n", Key("")), Pair("\n", Key(""))));
}

TEST(CopySplitTextTest, TrailingBackslashAtFinish) {
  Result r = RunWhole(Format("text"), "ab\\");
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("ab\\", Key("ab"))));
}

// ---- CSV format ----------------------------------------------------------------------------

TEST(CopySplitCsvTest, QuotesHoldDelimitersNewlinesAndDoubledQuotes) {
  const CopyFormat f = Format("csv", "", "", false, 1);
  const std::string data =
      "1,\"a,b\",x\n"
      "2,\"line1\nline2\",y\n"
      "3,\"say \"\"hi\"\"\",z\n"
      "4,\"crlf\r\ninside\"\r\n"
      "5,a\"b,c\"d,e\n";
  Result r = RunWhole(f, data);
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("1,\"a,b\",x\n", Key("a,b")),
                                  Pair("2,\"line1\nline2\",y\n", Key("line1\nline2")),
                                  Pair("3,\"say \"\"hi\"\"\",z\n", Key("say \"hi\"")),
                                  Pair("4,\"crlf\r\ninside\"\r\n", Key("crlf\r\ninside")),
                                  Pair("5,a\"b,c\"d,e\n", Key("ab,cd"))));
  ExpectSplitInvariant(f, data);
}

TEST(CopySplitCsvTest, NullIsAnUnquotedEmptyField) {
  const CopyFormat f = Format("csv", "", "", false, 1);
  const std::string data = "1,,x\n2,\"\",x\n3,\n4,\"\"\n";
  Result r = RunWhole(f, data);
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("1,,x\n", std::nullopt), Pair("2,\"\",x\n", Key("")),
                                  Pair("3,\n", std::nullopt), Pair("4,\"\"\n", Key(""))));
  ExpectSplitInvariant(f, data);
}

TEST(CopySplitCsvTest, CustomDelimiterAndNullString) {
  const CopyFormat f = Format("csv", ";", "NULL", false, 0);
  const std::string data = "NULL;a\n\"NULL\";b\n;c\n\"x;y\";d\n";
  Result r = RunWhole(f, data);
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("NULL;a\n", std::nullopt), Pair("\"NULL\";b\n", Key("NULL")),
                                  Pair(";c\n", Key("")), Pair("\"x;y\";d\n", Key("x;y"))));
  ExpectSplitInvariant(f, data);
}

TEST(CopySplitCsvTest, DistinctEscapeCharacter) {
  CopyFormat f = Format("csv");
  f.escape = '\\';
  const std::string data = "\"a\\\"b\\\\\",1\n\"c\\d\",2\n";
  Result r = RunWhole(f, data);
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("\"a\\\"b\\\\\",1\n", Key("a\"b\\")),
                                  Pair("\"c\\d\",2\n", Key("c\\d"))));
  ExpectSplitInvariant(f, data);
}

TEST(CopySplitCsvTest, HeaderIsSkippedEvenWithQuotedNewlines) {
  const CopyFormat f = Format("csv", "", "", true, 0);
  const std::string data = "\"i\nd\",name\n1,a\n";
  Result r = RunWhole(f, data);
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("1,a\n", Key("1"))));
  ExpectSplitInvariant(f, data);
}

TEST(CopySplitCsvTest, EndMarkerOnlyAloneOnALine) {
  const CopyFormat f = Format("csv");
  const std::string data = "\"\\.\",1\n\\.x,2\nk,\"\n\\.\n\"\n\\.\nafter,3\n";
  Result r = RunWhole(f, data);
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("\"\\.\",1\n", Key("\\.")), Pair("\\.x,2\n", Key("\\.x")),
                                  Pair("k,\"\n\\.\n\"\n", Key("k"))));
  ExpectSplitInvariant(f, data);
  r = RunWhole(f, "1\r\n\\.\r\n2\r\n");
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("1\r\n", Key("1"))));
  // At the end without a newline "\." is data in CSV (PostgreSQL: missing data for column b).
  r = RunWhole(f, "1\n\\.");
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("1\n", Key("1")), Pair("\\.", Key("\\."))));
}

TEST(CopySplitCsvTest, QuoteRightAfterLeadingBackslashDotDoesNotOpenQuotes) {
  // PostgreSQL's line reader consumes the byte after a leading "\." unseen; the row ends at the
  // first newline, as on the server (which then fails on it, as we do).
  const CopyFormat f = Format("csv");
  Result r = RunWhole(f, "\\.\"x\ny\n");
  EXPECT_THAT(r.status, HasSqlState("22P04"));
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("unterminated CSV quoted field"));
}

TEST(CopySplitCsvTest, UnterminatedQuoteAtFinish) {
  const CopyFormat f = Format("csv");
  Result r = RunWhole(f, "1,a\n\"2,b\n");
  EXPECT_THAT(r.status, HasSqlState("22P04"));
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("unterminated CSV quoted field"));
  EXPECT_THAT(r.rows, ElementsAre(Pair("1,a\n", Key("1"))));
  ExpectSplitInvariant(f, "1,a\n\"2,b\n");
}

TEST(CopySplitCsvTest, UnterminatedHeaderIsNoError) {
  // PostgreSQL never parses the fields of the header line, so cannot find its quote open.
  Result r = RunWhole(Format("csv", "", "", true, 0), "\"id,name\n1,a\n");
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, IsEmpty());
}

TEST(CopySplitCsvTest, LastRowWithoutNewlineAndTooFewFields) {
  const CopyFormat f = Format("csv", "", "", false, 1);
  Result r = RunWhole(f, "a,\"b\"\nc,d");
  ASSERT_OK(r.status);
  EXPECT_THAT(r.rows, ElementsAre(Pair("a,\"b\"\n", Key("b")), Pair("c,d", Key("d"))));
  r = RunWhole(f, "\"a,b\"\n");
  EXPECT_THAT(r.status, HasSqlState("22P04"));
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("missing data for column 2"));
}

TEST(CopySplitTest, CallbackErrorStopsTheFeed) {
  CopySplitter splitter(Format("text"));
  int calls = 0;
  absl::Status st = splitter.Feed("1\n2\n3\n", [&](std::string_view, std::optional<std::string_view>) {
    ++calls;
    return calls == 2 ? absl::UnavailableError("shard gone") : absl::OkStatus();
  });
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(calls, 2);
}

TEST(CopySplitTest, CountsLinesAsPostgresDoes) {
  CopySplitter splitter(Format("csv", "", "", true, 0));
  auto ignore = [](std::string_view, std::optional<std::string_view>) { return absl::OkStatus(); };
  ASSERT_OK(splitter.Feed("h\n\"a\nb\"\nc\n", ignore));
  EXPECT_EQ(splitter.lines(), 3);
}

// Random bytes from a small alphabet of the special characters: never crashes, and cutting the
// stream anywhere never changes the rows.
TEST(CopySplitTest, RandomInputIsSplitInvariant) {
  const std::string_view alphabet = "ab,\t\\.\"\r\nN";
  uint32_t seed = 12345;
  auto next = [&] {
    seed = seed * 1103515245u + 12345u;
    return (seed >> 16) & 0x7fff;
  };
  for (int round = 0; round < 300; ++round) {
    std::string data;
    const size_t size = next() % 24;
    for (size_t i = 0; i < size; ++i) data.push_back(alphabet[next() % alphabet.size()]);
    for (const CopyFormat& f : {Format("text"), Format("csv"), Format("csv", "", "", true, 1),
                                Format("text", ",", "N", false, 1)}) {
      ExpectSplitInvariant(f, data);
    }
  }
}

}  // namespace
}  // namespace shardgate::proxy
