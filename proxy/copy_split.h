// CopySplitter: cuts a COPY FROM STDIN data stream (text or CSV format) into rows and finds each
// row's shard-key field, so the proxy can send every row to the shard that owns it.
//
// The client's CopyData messages split rows anywhere; the splitter buffers the incomplete tail.
// Rows are returned as views of whole lines including their terminating newline (valid until
// the next Feed), so they are forwarded byte for byte. CSV honours quotes (a quoted field may
// hold delimiters and newlines) and the HEADER line; text honours backslash escapes and the
// end-of-data marker "\." line. Binary COPY is not split (the caller refuses it). No I/O.
//
// Row boundaries follow PostgreSQL 15's own line reader (copyfromparse.c), quirks included, so
// that every shard cuts the bytes it receives into exactly the rows we routed: a row ends at a
// "\n" that is not escaped (text) or not inside quotes (CSV); "\r\n" ends a row too and is kept
// as it is. Any other unescaped, unquoted '\r' is refused (22P04): PostgreSQL refuses it too
// unless the data uses bare "\r" line endings (old Mac style), which we do not split, and
// passing such data on as one row would send every row to the shard of the first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shardgate::proxy {

// The options of one COPY ... FROM STDIN that matter for cutting rows and reading the key.
// Build it with CopyFormatFor, which fills the per-format defaults (a default-constructed
// CopyFormat has an empty null_string, which is the CSV default but not the text one).
struct CopyFormat {
  bool csv = false;
  char delimiter = '\t';        // text default '\t', CSV default ','
  char quote = '"';             // CSV only
  char escape = '"';            // CSV only
  std::string null_string;      // text default "\\N", CSV default "" (unquoted empty)
  bool header = false;          // CSV (and text in PG 15): the first line is a header
  int key_column = 0;           // 0-based field index of the shard key
  std::string key_column_name;  // for error messages only; empty = name unknown
};

// The CopyFormat for COPY options as written by the client: `format` "text" | "csv" | "binary"
// (any case), `delimiter` and `null_string` empty for the format's default. Checks the options
// as PostgreSQL does (so a bad COPY fails here, before any shard has been sent anything).
// Errors: 0A000 for binary (rows cannot be routed without the column types) and for a
// multi-byte delimiter; 22023 for an unknown format or a delimiter/NULL string PostgreSQL
// refuses; kInvalidArgument for a negative key_column (a bug in the caller).
absl::StatusOr<CopyFormat> CopyFormatFor(std::string_view format, std::string_view delimiter,
                                         std::string_view null_string, bool header,
                                         int key_column);

class CopySplitter {
 public:
  // Called once per data row, in input order. `row` is valid only during the call.
  using RowCallback =
      std::function<absl::Status(std::string_view row, std::optional<std::string_view> key)>;

  explicit CopySplitter(CopyFormat format) : format_(std::move(format)) {}

  // For each complete row in `data` (and the buffered tail before it): `row` is the whole line
  // with its newline, `key` the key field decoded (unescaped/unquoted; nullopt when it is the
  // NULL string). The header line and the "\." end marker are not passed to `on_row`.
  // Errors from `on_row` stop the feed and are returned; 22P04 for a row with too few fields,
  // an unterminated CSV quoted field or a corrupt "\." marker.
  //
  // Rows wholly inside `data` are views of it (no copy); only a row that spans Feed calls is
  // assembled in a member buffer. After the end marker everything is ignored, as PostgreSQL
  // ignores the rest of the COPY data. Text format only: "\." in the middle of a line ends the
  // data too (PostgreSQL 15 takes what precedes it as the last row); that row is passed on with
  // the marker and its newline still in it, so the shard ends on it the same way.
  // After an error the splitter is in an unspecified state: the COPY must be abandoned.
  absl::Status Feed(std::string_view data, const RowCallback& on_row);

  // At CopyDone: a last row without a newline is passed on; an unterminated quoted CSV field is
  // 22P04 ("unterminated CSV quoted field"), and so is a text "\." not followed by a newline
  // ("end-of-copy marker corrupt"), as in PostgreSQL. Further Feed/Finish calls do nothing.
  absl::Status Finish(const RowCallback& on_row);

  // Logical lines seen so far (header and marker included), as PostgreSQL numbers them in
  // "COPY t, line N".
  int64_t lines() const { return lines_; }

 private:
  // Where the row scanner is inside the current row. Kept across Feed calls so that a row split
  // over many messages is scanned once, not again from its start each time.
  enum class Scan : uint8_t {
    kPlain,           // outside quotes, nothing pending
    kCr,              // after an unescaped, unquoted '\r': only "\n" may follow
    kBackslash,       // text: after an unescaped '\'; the next byte is taken literally
    kDot,             // text: after "\."; a newline (or "\r\n") must follow
    kDotCr,           // text: after "\.\r"; "\n" must follow
    kInQuote,         // CSV: inside a quoted field
    kQuoteEscape,     // CSV: inside quotes after an escape char that is not the quote char
    kStartBackslash,  // CSV: the row began with '\'
    kStartDot,        // CSV: the row began with "\."
    kStartDotCr,      // CSV: the row began with "\.\r"
  };

  // Advances the scanner by one byte of the current row; true when `c` ends the row. Sets
  // marker_at_ when the row ends with an end-of-data marker.
  absl::StatusOr<bool> Step(char c);
  // Handles one whole row: header, marker, key, then `on_row`. `terminated` is false for the
  // last row at Finish.
  absl::Status Emit(std::string_view row, bool terminated, const RowCallback& on_row);
  // The decoded key field of `content` (the row without its line ending).
  absl::StatusOr<std::optional<std::string_view>> KeyOf(std::string_view content);
  absl::StatusOr<std::optional<std::string_view>> TextKeyOf(std::string_view content);
  absl::StatusOr<std::optional<std::string_view>> CsvKeyOf(std::string_view content);
  absl::Status Malformed(std::string_view message) const;
  absl::Status CarriageReturn();  // the 22P04 for a '\r' that does not end a line

  CopyFormat format_;
  std::string pending_;   // bytes of an incomplete row
  std::string key_;       // the decoded key of the row being reported
  bool header_done_ = false;
  bool ended_ = false;    // saw "\." (or Finish ran)
  Scan scan_ = Scan::kPlain;
  size_t row_len_ = 0;                         // bytes of the current row scanned so far
  size_t marker_at_ = std::string_view::npos;  // offset of "\." in the current row
  int64_t lines_ = 0;
};

}  // namespace shardgate::proxy
