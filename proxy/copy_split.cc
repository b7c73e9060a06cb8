// CopySplitter: COPY FROM STDIN rows (text and CSV) cut as PostgreSQL 15 cuts them, with the
// shard key decoded. See copy_split.h for the contract.
#include "proxy/copy_split.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "protocol/status.h"

namespace shardgate::proxy {
namespace {

constexpr std::string_view kMalformed = "22P04";  // bad_copy_file_format
constexpr std::string_view kInvalidParameter = "22023";
constexpr std::string_view kNotSupported = "0A000";

bool IsOctal(char c) { return c >= '0' && c <= '7'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// True when the last byte of `s` is escaped in text format: preceded by an odd run of
// backslashes (each pair is one escaped backslash).
bool LastIsEscaped(std::string_view s) {
  size_t backslashes = 0;
  for (size_t i = s.size() - 1; i > 0 && s[i - 1] == '\\'; --i) ++backslashes;
  return backslashes % 2 == 1;
}

// `row` without its line ending ("\n" or "\r\n"). The last row at Finish may end without one,
// in a lone '\r' (PostgreSQL's line ending too), or in a newline that a backslash makes data.
std::string_view Content(std::string_view row, bool text) {
  if (!row.empty() && row.back() == '\n' && !(text && LastIsEscaped(row))) row.remove_suffix(1);
  if (!row.empty() && row.back() == '\r' && !(text && LastIsEscaped(row))) row.remove_suffix(1);
  return row;
}

// Too few fields before the key: PostgreSQL names the column; we name it when we know it.
absl::Status MissingKey(const CopyFormat& format, int64_t line) {
  std::string column = format.key_column_name.empty()
                           ? absl::StrCat(format.key_column + 1, " (the shard key)")
                           : absl::StrCat("\"", format.key_column_name, "\"");
  return PgStatus(kMalformed, absl::StrCat("missing data for column ", column), {},
                  absl::StrCat("COPY data line ", line));
}

}  // namespace

absl::StatusOr<CopyFormat> CopyFormatFor(std::string_view format, std::string_view delimiter,
                                         std::string_view null_string, bool header,
                                         int key_column) {
  if (key_column < 0) {
    return absl::InvalidArgumentError(absl::StrCat("negative COPY key column ", key_column));
  }
  CopyFormat out;
  const absl::string_view name = AbslView(format);
  if (absl::EqualsIgnoreCase(name, "binary")) {
    return PgStatus(kNotSupported, "COPY ... BINARY into a sharded table is not supported",
                    "use text or CSV");
  }
  if (absl::EqualsIgnoreCase(name, "csv")) {
    out.csv = true;
  } else if (!absl::EqualsIgnoreCase(name, "text")) {
    return PgStatus(kInvalidParameter, absl::StrCat("COPY format \"", name, "\" not recognized"));
  }
  // Checks in the order of PostgreSQL's ProcessCopyOptions, with its messages.
  if (delimiter.size() > 1) {
    return PgStatus(kNotSupported, "COPY delimiter must be a single one-byte character");
  }
  out.delimiter = delimiter.empty() ? (out.csv ? ',' : '\t') : delimiter[0];
  out.null_string = null_string.empty() ? (out.csv ? "" : "\\N") : std::string(null_string);
  out.header = header;
  out.key_column = key_column;
  if (out.delimiter == '\n' || out.delimiter == '\r') {
    return PgStatus(kInvalidParameter, "COPY delimiter cannot be newline or carriage return");
  }
  if (out.null_string.find_first_of("\r\n") != std::string::npos) {
    return PgStatus(kInvalidParameter,
                    "COPY null representation cannot use newline or carriage return");
  }
  // In text these bytes start or are part of backslash escapes, so could not separate fields.
  if (!out.csv &&
      std::string_view("\\.abcdefghijklmnopqrstuvwxyz0123456789").find(out.delimiter) !=
          std::string_view::npos) {
    return PgStatus(kInvalidParameter,
                    absl::StrCat("COPY delimiter cannot be \"", std::string(1, out.delimiter),
                                 "\""));
  }
  if (out.csv && out.delimiter == out.quote) {
    return PgStatus(kInvalidParameter, "COPY delimiter and quote must be different");
  }
  if (out.null_string.find(out.delimiter) != std::string::npos) {
    return PgStatus(kInvalidParameter,
                    "COPY delimiter must not appear in the NULL specification");
  }
  if (out.csv && out.null_string.find(out.quote) != std::string::npos) {
    return PgStatus(kInvalidParameter,
                    "CSV quote character must not appear in the NULL specification");
  }
  return out;
}

absl::Status CopySplitter::CarriageReturn() {
  ++lines_;
  return PgStatus(kMalformed, "carriage return not followed by a newline in COPY data",
                  "end lines with \\n or \\r\\n; write a carriage return in data as \\r (text) "
                  "or inside quotes (CSV)",
                  absl::StrCat("COPY data line ", lines_));
}

absl::Status CopySplitter::Malformed(std::string_view message) const {
  return PgStatus(kMalformed, message, {}, absl::StrCat("COPY data line ", lines_));
}

// One byte of PostgreSQL's CopyReadLineText. `c` is at offset row_len_ of the current row.
absl::StatusOr<bool> CopySplitter::Step(char c) {
  switch (scan_) {
    case Scan::kPlain:
      if (c == '\n') return true;
      if (c == '\r') {
        scan_ = Scan::kCr;
      } else if (format_.csv) {
        if (c == format_.quote) {
          scan_ = Scan::kInQuote;
        } else if (c == '\\' && row_len_ == 0) {
          scan_ = Scan::kStartBackslash;
        }
      } else if (c == '\\') {
        scan_ = Scan::kBackslash;
      }
      return false;

    case Scan::kCr:
      if (c == '\n') return true;
      return CarriageReturn();

    case Scan::kBackslash:
      // Anything after a backslash is data, a newline included; only "\." is special.
      if (c == '.') {
        scan_ = Scan::kDot;
        marker_at_ = row_len_ - 1;
      } else {
        scan_ = Scan::kPlain;
      }
      return false;

    case Scan::kDot:
    case Scan::kDotCr:
      if (c == '\n') return true;
      if (c == '\r' && scan_ == Scan::kDot) {
        scan_ = Scan::kDotCr;
        return false;
      }
      ++lines_;  // PostgreSQL reports the line of the marker
      return Malformed("end-of-copy marker corrupt");

    case Scan::kInQuote:
      if (c == format_.escape && format_.escape != format_.quote) {
        scan_ = Scan::kQuoteEscape;
      } else if (c == format_.quote) {
        // When escape == quote, a doubled quote leaves and re-enters quotes: same result.
        scan_ = Scan::kPlain;
      }
      return false;

    case Scan::kQuoteEscape:
      // Escape + quote or escape + escape: both bytes are data. Anything else: the escape
      // was data and `c` is an ordinary byte inside quotes (it is not the quote char).
      scan_ = Scan::kInQuote;
      return false;

    case Scan::kStartBackslash:
      if (c == '.') {
        scan_ = Scan::kStartDot;
        return false;
      }
      // In CSV a backslash is ordinary: `c` is processed as any byte.
      scan_ = Scan::kPlain;
      return Step(c);

    case Scan::kStartDot:
      if (c == '\n') {
        marker_at_ = 0;
        return true;
      }
      if (c == '\r') {
        scan_ = Scan::kStartDotCr;
        return false;
      }
      // "\.x" at the start of a CSV line is data. PostgreSQL has already consumed the byte
      // after the dot without looking at it, so a quote char here does not open quotes.
      scan_ = Scan::kPlain;
      return false;

    case Scan::kStartDotCr:
      if (c == '\n') {
        marker_at_ = 0;
        return true;
      }
      return CarriageReturn();
  }
  return false;
}

absl::Status CopySplitter::Feed(std::string_view data, const RowCallback& on_row) {
  size_t row_begin = 0;  // in `data`, of the part of the current row that is in `data`
  // Bytes that can change the scanner's state from kPlain once past a row's first byte; runs of
  // other bytes (most of a row) are skipped without a Step call each.
  const char special = format_.csv ? format_.quote : '\\';
  for (size_t i = 0; i < data.size() && !ended_; ++i) {
    if (scan_ == Scan::kPlain && row_len_ > 0) {
      const size_t run_start = i;
      while (i < data.size() && data[i] != '\n' && data[i] != '\r' && data[i] != special) ++i;
      row_len_ += i - run_start;
      if (i == data.size()) break;
    }
    absl::StatusOr<bool> row_ends = Step(data[i]);
    if (!row_ends.ok()) return row_ends.status();
    ++row_len_;
    if (!*row_ends) continue;
    std::string_view row = data.substr(row_begin, i + 1 - row_begin);
    if (!pending_.empty()) {
      pending_.append(row);
      row = pending_;
    }
    RETURN_IF_ERROR(Emit(row, /*terminated=*/true, on_row));
    pending_.clear();
    row_begin = i + 1;
  }
  if (!ended_) pending_.append(data.substr(row_begin));
  return absl::OkStatus();
}

absl::Status CopySplitter::Finish(const RowCallback& on_row) {
  if (ended_) return absl::OkStatus();
  switch (scan_) {
    case Scan::kInQuote:
    case Scan::kQuoteEscape:
      // PostgreSQL's line reader takes the end of data as the end of the line; only parsing the
      // fields fails, so an unterminated header line (never parsed) is no error.
      ++lines_;
      ended_ = true;
      if (format_.header && !header_done_) return absl::OkStatus();
      return Malformed("unterminated CSV quoted field");
    case Scan::kDot:
    case Scan::kDotCr:
      ++lines_;
      return Malformed("end-of-copy marker corrupt");
    default:
      break;
  }
  absl::Status status = absl::OkStatus();
  if (!pending_.empty()) status = Emit(pending_, /*terminated=*/false, on_row);
  pending_.clear();
  ended_ = true;
  return status;
}

absl::Status CopySplitter::Emit(std::string_view row, bool terminated, const RowCallback& on_row) {
  ++lines_;
  const size_t marker_at = terminated ? marker_at_ : std::string_view::npos;
  scan_ = Scan::kPlain;
  row_len_ = 0;
  marker_at_ = std::string_view::npos;

  std::string_view content = Content(row, !format_.csv);
  if (marker_at != std::string_view::npos) {
    ended_ = true;
    content = row.substr(0, marker_at);
    if (content.empty()) return absl::OkStatus();
  }
  if (format_.header && !header_done_) {
    header_done_ = true;
    return absl::OkStatus();
  }
  absl::StatusOr<std::optional<std::string_view>> key = KeyOf(content);
  if (!key.ok()) return key.status();
  return on_row(row, *key);
}

absl::StatusOr<std::optional<std::string_view>> CopySplitter::KeyOf(std::string_view content) {
  return format_.csv ? CsvKeyOf(content) : TextKeyOf(content);
}

// Fields as CopyReadAttributesText splits them: at each delimiter not preceded by an escaping
// backslash. The NULL string is compared with the raw (still escaped) field, as PostgreSQL does.
absl::StatusOr<std::optional<std::string_view>> CopySplitter::TextKeyOf(
    std::string_view content) {
  size_t pos = 0;
  for (int field = 0;; ++field) {
    const size_t start = pos;
    bool escaped = false;
    bool found_delim = false;
    while (pos < content.size()) {
      const char c = content[pos++];
      if (c == format_.delimiter) {
        found_delim = true;
        break;
      }
      if (c == '\\') {
        escaped = true;
        if (pos < content.size()) ++pos;
      }
    }
    if (field < format_.key_column) {
      if (!found_delim) return MissingKey(format_, lines_);
      continue;
    }
    const std::string_view raw = content.substr(start, pos - start - (found_delim ? 1 : 0));
    if (raw == format_.null_string) return std::nullopt;
    if (!escaped) return raw;
    key_.clear();
    for (size_t i = 0; i < raw.size(); ++i) {
      char c = raw[i];
      if (c != '\\') {
        key_.push_back(c);
        continue;
      }
      if (++i >= raw.size()) break;  // a trailing lone backslash is dropped, as in PostgreSQL
      c = raw[i];
      switch (c) {
        case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
          int value = c - '0';
          for (int digits = 1; digits < 3 && i + 1 < raw.size() && IsOctal(raw[i + 1]); ++digits) {
            value = (value << 3) + (raw[++i] - '0');
          }
          c = static_cast<char>(value & 0xff);
          break;
        }
        case 'x':
          if (i + 1 < raw.size() && HexValue(raw[i + 1]) >= 0) {
            int value = HexValue(raw[++i]);
            if (i + 1 < raw.size() && HexValue(raw[i + 1]) >= 0) {
              value = (value << 4) + HexValue(raw[++i]);
            }
            c = static_cast<char>(value);
          }
          break;  // "\x" without a hex digit is a plain 'x'
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'v': c = '\v'; break;
        default: break;  // any other byte after a backslash stands for itself
      }
      key_.push_back(c);
    }
    return std::string_view(key_);
  }
}

// Fields as CopyReadAttributesCSV splits them: quoted parts may hold delimiters and newlines,
// "" (or escape + quote) inside quotes is a quote, and quoted and unquoted parts may alternate
// within one field. Only an unquoted field equal to the NULL string is NULL.
absl::StatusOr<std::optional<std::string_view>> CopySplitter::CsvKeyOf(
    std::string_view content) {
  const char quote = format_.quote;
  const char escape = format_.escape;
  size_t pos = 0;
  for (int field = 0;; ++field) {
    const size_t start = pos;
    const bool is_key = field == format_.key_column;
    bool saw_quote = false;
    bool found_delim = false;
    while (pos < content.size()) {
      const char c = content[pos++];
      if (c == format_.delimiter) {
        found_delim = true;
        break;
      }
      if (c != quote) {
        if (is_key && saw_quote) key_.push_back(c);
        continue;
      }
      // Only a quoted key needs decoding into key_; an unquoted one is returned as a view.
      if (is_key && !saw_quote) key_.assign(content.substr(start, pos - 1 - start));
      saw_quote = true;
      for (;;) {
        if (pos >= content.size()) return Malformed("unterminated CSV quoted field");
        char q = content[pos++];
        if (q == escape && pos < content.size() &&
            (content[pos] == escape || content[pos] == quote)) {
          q = content[pos++];
        } else if (q == quote) {
          break;
        }
        if (is_key) key_.push_back(q);
      }
    }
    if (!is_key) {
      if (!found_delim) return MissingKey(format_, lines_);
      continue;
    }
    const std::string_view raw = content.substr(start, pos - start - (found_delim ? 1 : 0));
    if (!saw_quote) {
      if (raw == format_.null_string) return std::nullopt;
      return raw;  // no quotes: the field is its own decoding, no copy needed
    }
    return std::string_view(key_);
  }
}

}  // namespace shardgate::proxy
