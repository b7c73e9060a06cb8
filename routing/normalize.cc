// A one-pass PostgreSQL lexer (the subset of scan.l that decides where literals and comments
// are) producing the normalized cache key and the literal values.
#include "routing/normalize.h"

#include <algorithm>
#include <array>
#include <limits>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "routing/text_util.h"

namespace shardgate::routing {
namespace {

// Character classes, one table lookup per character (the lexer's inner loops).
enum : uint8_t {
  kSpace = 1,
  kIdentStart = 2,  // letters, '_', and every byte >= 0x80 (as scan.l's ident_start)
  kIdentChar = 4,   // ident_start, digits and '$'
  kDigit = 8,
  kOperator = 16,  // characters of an operator token
};
constexpr std::array<uint8_t, 256> kCharClass = [] {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80) {
      t[c] |= kIdentStart | kIdentChar;
    }
    if (c >= '0' && c <= '9') t[c] |= kDigit | kIdentChar;
  }
  t['$'] |= kIdentChar;
  for (char c : std::string_view(" \t\n\r\f\v")) t[static_cast<unsigned char>(c)] |= kSpace;
  for (char c : std::string_view("+-*/<>=~!@#%^&|`?")) {
    t[static_cast<unsigned char>(c)] |= kOperator;
  }
  return t;
}();
inline bool Is(char c, uint8_t cls) {
  return (kCharClass[static_cast<unsigned char>(c)] & cls) != 0;
}
inline bool IsIdentStart(char c) { return Is(c, kIdentStart); }
inline bool IsIdentChar(char c) { return Is(c, kIdentChar); }
inline bool IsDigit(char c) { return Is(c, kDigit); }

// A set of lowercase keywords, looked up case-insensitively (the lexer looks up every bare
// word): most identifiers are rejected by their first letter and length alone; the others are
// folded once into two 64-bit words and compared with the keywords of their first letter, two
// integer comparisons each.
//
// Folding sets bit 0x20 of each of the 16 bytes (the word, then zero padding): it maps 'A'-'Z'
// to 'a'-'z' and no other byte of an identifier (letters, digits, '_', '$', bytes >= 0x80) to
// a letter or to the padding's 0x20, so folded words are equal exactly when the words are
// equal ignoring ASCII case.
template <size_t N>
class KeywordSet {
 public:
  constexpr explicit KeywordSet(std::array<std::string_view, N> words) {
    std::sort(words.begin(), words.end());  // by first letter: each letter's words together
    for (size_t i = N; i-- > 0;) {
      const std::string_view w = words[i];
      const int letter = w[0] - 'a';
      lengths_[letter] |= 1u << w.size();
      first_[letter] = static_cast<uint8_t>(i);
      ++count_[letter];
      folded_[i] = Fold(w);
    }
  }
  bool Contains(std::string_view w) const {
    if (w.empty() || w.size() > kMaxLength) return false;
    const char first = LowerAscii(w[0]);
    if (first < 'a' || first > 'z' || ((lengths_[first - 'a'] >> w.size()) & 1u) == 0) {
      return false;
    }
    const std::array<uint64_t, 2> folded = Fold(w);
    const size_t begin = first_[first - 'a'];
    for (size_t i = begin; i < begin + count_[first - 'a']; ++i) {
      if (folded_[i] == folded) return true;
    }
    return false;
  }

 private:
  // Byte by byte in registers (a memcpy into a buffer read back as two 64-bit words stalls on
  // store forwarding and costs more than this loop).
  static constexpr std::array<uint64_t, 2> Fold(std::string_view w) {
    std::array<uint64_t, 2> f = {0x2020202020202020u, 0x2020202020202020u};
    for (size_t k = 0; k < w.size(); ++k) {
      f[k / 8] |= uint64_t{static_cast<unsigned char>(w[k])} << (8 * (k % 8));
    }
    return f;
  }
  static_assert(N < 256);
  static constexpr size_t kMaxLength = 15;  // lengths_ has a bit per length
  std::array<std::array<uint64_t, 2>, N> folded_{};
  std::array<uint16_t, 26> lengths_{};  // bit L of [c - 'a']: a word of length L starts with c
  std::array<uint8_t, 26> first_{};     // [c - 'a']: index of the first word starting with c
  std::array<uint8_t, 26> count_{};     // [c - 'a']: how many words start with c
};

// Words after which an expression (so a parameter) may follow. A string literal after any
// other bare word is a typed literal (DATE '...', INTERVAL '...', AT TIME ZONE '...') or a
// utility argument and stays in place.
constexpr KeywordSet<34> kParamWords({
    "select", "where", "and", "or", "not", "in", "is", "like", "ilike", "similar", "to",
    "escape", "between", "then", "else", "when", "case", "values", "returning", "by",
    "having", "on", "limit", "offset", "all", "any", "some", "distinct", "from", "using",
    "overlaps", "array", "symmetric", "row"});
bool WordAllowsParam(std::string_view w) { return kParamWords.Contains(w); }

// Keywords between which operator chains do not nest (AND/OR lists are flat in the tree).
constexpr KeywordSet<16> kChainResetWords({"and", "or", "select", "from", "where", "when",
                                           "then", "else", "set", "values", "on", "by",
                                           "having", "returning", "union", "join"});

// What replaces a span of the input in the output.
struct Edit {
  uint32_t start, end;
  int literal;  // >= 0: literal index, -1: a comment (becomes one space)
};

class Lexer {
 public:
  Lexer(std::string_view sql, NormalizedStatement& out, std::vector<Edit>& edits)
      : s_(sql), out_(out), edits_(edits) {}

  void Run() {
    size_t n = s_.size();
    while (i_ < n) {
      unsigned char c = s_[i_];
      if (Is(c, kSpace)) {
        ++i_;
      } else if (c == '-' && Peek(1) == '-') {
        size_t start = i_;
        while (i_ < n && s_[i_] != '\n') ++i_;
        edits_.push_back({U(start), U(i_), -1});
      } else if (c == '/' && Peek(1) == '*') {
        BlockComment();
      } else if (c == '\'') {
        String(i_, false);
      } else if ((c == 'e' || c == 'E') && Peek(1) == '\'') {
        String(i_, true);
      } else if ((c == 'b' || c == 'B' || c == 'x' || c == 'X' || c == 'n' || c == 'N') &&
                 Peek(1) == '\'') {
        SkipQuoted(i_ + 1, '\'');  // bit strings and N'': kept in place
        prev_word_ = {};
      } else if ((c == 'u' || c == 'U') && Peek(1) == '&' && (Peek(2) == '\'' || Peek(2) == '"')) {
        SkipQuoted(i_ + 2, Peek(2));  // Unicode-escaped: kept in place
        prev_word_ = {};
      } else if (IsIdentStart(c)) {
        const size_t start = i_;
        size_t end = i_ + 1;  // a local index: the loop keeps it in a register
        while (end < n && IsIdentChar(s_[end])) ++end;
        i_ = end;
        prev_word_ = s_.substr(start, end - start);
        prev_value_ = false;
        if (ResetsChain(prev_word_)) ResetSegment();
      } else if (c == '"') {
        SkipQuoted(i_, '"');
        prev_word_ = {};
        prev_value_ = true;
      } else if (c == '$') {
        Dollar();
      } else if (IsDigit(c) || (c == '.' && IsDigit(Peek(1)))) {
        Number();
      } else {
        Punctuation(c);
        ++i_;
        prev_word_ = {};
        prev_value_ = c == ')' || c == ']';
      }
    }
  }

 private:
  static uint32_t U(size_t v) { return static_cast<uint32_t>(v); }

  static bool IsOperatorChar(char c) { return Is(c, kOperator); }
  static bool ResetsChain(std::string_view w) { return kChainResetWords.Contains(w); }
  void ResetSegment() {
    sum_ -= segment_.back();
    segment_.back() = 0;
  }
  void Punctuation(char c) {
    if (c == '(' || c == '[') {
      segment_.push_back(0);
    } else if ((c == ')' || c == ']') && segment_.size() > 1) {
      sum_ -= segment_.back();
      segment_.pop_back();
    } else if (c == ',' || c == ';') {
      ResetSegment();
    } else if (IsOperatorChar(c) && (i_ == 0 || !IsOperatorChar(s_[i_ - 1]))) {
      ++segment_.back();  // one operator token: one more level in a left-deep chain
      ++sum_;
    }
    int estimate = sum_ + static_cast<int>(segment_.size());
    if (estimate > out_.nesting) out_.nesting = estimate;
  }
  char Peek(size_t k) const { return i_ + k < s_.size() ? s_[i_ + k] : '\0'; }

  bool ParamAllowedHere() const { return prev_word_.empty() || WordAllowsParam(prev_word_); }

  void AddLiteral(size_t start, Literal::Kind kind, std::string value) {
    Literal lit;
    lit.kind = kind;
    lit.value = std::move(value);
    lit.offset = U(start);
    lit.length = U(i_ - start);
    edits_.push_back({U(start), U(i_), static_cast<int>(out_.literals.size())});
    out_.literals.push_back(std::move(lit));
    prev_word_ = {};
    prev_value_ = true;
  }

  void BlockComment() {
    size_t start = i_, n = s_.size();
    int depth = 0;
    while (i_ < n) {
      if (s_[i_] == '/' && Peek(1) == '*') {
        ++depth;
        i_ += 2;
      } else if (s_[i_] == '*' && Peek(1) == '/') {
        i_ += 2;
        if (--depth == 0) {
          edits_.push_back({U(start), U(i_), -1});
          return;
        }
      } else {
        ++i_;
      }
    }
    out_.unterminated = true;
  }

  // Skips a quoted token starting at `open` (the quote), doubled quotes escaping.
  void SkipQuoted(size_t open, char quote) {
    size_t n = s_.size();
    i_ = open + 1;
    while (i_ < n) {
      if (s_[i_] == quote) {
        if (Peek(1) == quote) {
          i_ += 2;
          continue;
        }
        ++i_;
        return;
      }
      if (quote == '\'' && s_[i_] == '\\' && escapes_) {
        i_ += 2;
        continue;
      }
      ++i_;
    }
    out_.unterminated = true;
  }

  // A standard or E'' string, with PostgreSQL's continuation of adjacent string literals
  // separated by whitespace that holds a newline.
  void String(size_t start, bool escape) {
    bool replace = ParamAllowedHere();
    size_t n = s_.size();
    std::string value;
    i_ = start + (escape ? 2 : 1);
    for (;;) {
      bool closed = false;
      while (i_ < n) {
        char c = s_[i_];
        if (c == '\'') {
          if (Peek(1) == '\'') {
            value.push_back('\'');
            i_ += 2;
            continue;
          }
          ++i_;
          closed = true;
          break;
        }
        if (escape && c == '\\' && i_ + 1 < n) {
          value.push_back(Unescape(s_[i_ + 1]));
          i_ += 2;
          continue;
        }
        value.push_back(c);
        ++i_;
      }
      if (!closed) {
        out_.unterminated = true;
        return;
      }
      // quotecontinue: whitespace including a newline, then another quote.
      size_t j = i_;
      bool newline = false;
      while (j < n && Is(s_[j], kSpace)) newline |= s_[j++] == '\n';
      if (!newline || j >= n || s_[j] != '\'') break;
      i_ = j + 1;
    }
    if (replace) {
      AddLiteral(start, Literal::Kind::kString, std::move(value));
    } else {
      prev_word_ = {};
      prev_value_ = true;
    }
  }

  static char Unescape(char c) {
    switch (c) {
      case 'n': return '\n';
      case 't': return '\t';
      case 'r': return '\r';
      case 'b': return '\b';
      case 'f': return '\f';
      default: return c;  // octal/hex/unicode escapes are rare in keys; kept literally
    }
  }

  void Dollar() {
    size_t start = i_, n = s_.size();
    if (IsDigit(Peek(1))) {  // $n
      i_ += 1;
      int v = 0;
      while (i_ < n && IsDigit(s_[i_])) {
        if (v < 100000) v = v * 10 + (s_[i_] - '0');
        ++i_;
      }
      if (v > out_.max_param) out_.max_param = v;
      prev_word_ = {};
      prev_value_ = true;
      return;
    }
    // $tag$ ... $tag$ (tag may be empty); a tag does not start with a digit.
    size_t j = i_ + 1;
    if (j < n && IsIdentStart(s_[j])) {
      while (j < n && IsIdentStart(s_[j])) ++j;
      while (j < n && (IsIdentStart(s_[j]) || IsDigit(s_[j]))) ++j;
    }
    if (j >= n || s_[j] != '$') {
      ++i_;
      prev_word_ = {};
      return;
    }
    std::string_view delim = s_.substr(i_, j - i_ + 1);
    size_t body = j + 1;
    size_t close = s_.find(delim, body);
    bool replace = ParamAllowedHere();
    if (close == std::string_view::npos) {
      out_.unterminated = true;
      i_ = n;
      return;
    }
    i_ = close + delim.size();
    if (replace) {
      AddLiteral(start, Literal::Kind::kString, std::string(s_.substr(body, close - body)));
    } else {
      prev_word_ = {};
    }
  }

  void Number() {
    size_t start = i_, n = s_.size();
    bool is_float = false;
    while (i_ < n && IsDigit(s_[i_])) ++i_;
    // "1..10" lexes as 1 then "..": only a single dot followed by no dot is a decimal point.
    if (i_ < n && s_[i_] == '.' && Peek(1) != '.') {
      is_float = true;
      ++i_;
      while (i_ < n && IsDigit(s_[i_])) ++i_;
    }
    if (i_ < n && (s_[i_] == 'e' || s_[i_] == 'E')) {
      size_t k = i_ + 1;
      if (k < n && (s_[k] == '+' || s_[k] == '-')) ++k;
      if (k < n && IsDigit(s_[k])) {
        is_float = true;
        i_ = k;
        while (i_ < n && IsDigit(s_[i_])) ++i_;
      }
    }
    // After a bare word that does not start an expression, a number is left alone: `$1` there
    // could parse as a typed literal (`name $1`) where the number is a syntax error.
    if (!ParamAllowedHere() || prev_value_) {
      prev_word_ = {};
      prev_value_ = true;
      return;
    }
    AddLiteral(start, is_float ? Literal::Kind::kFloat : Literal::Kind::kInteger,
               std::string(s_.substr(start, i_ - start)));
    if (!is_float) IntegerValue(out_.literals.back());
  }

  // The digits' value, read once here so that routing and prepare_reads need not parse them.
  static void IntegerValue(Literal& lit) {
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    int64_t v = 0;
    for (char c : lit.value) {
      const int d = c - '0';
      if (v > (kMax - d) / 10) return;  // out of range: left to the readers' own parse
      v = v * 10 + d;
    }
    lit.has_int = true;
    lit.int_value = v;
  }

  std::string_view s_;
  NormalizedStatement& out_;
  std::vector<Edit>& edits_;
  size_t i_ = 0;
  std::string_view prev_word_;
  // The previous token ends a value (a literal, $n, a quoted name, ')' or ']'): a number right
  // after one is a syntax error that a `$n` there might not be.
  bool prev_value_ = false;
  bool escapes_ = false;  // standard_conforming_strings: backslash is literal in ''
  // Operator tokens per open bracket since the last ','; inline: a Lexer runs per statement.
  absl::InlinedVector<int, 16> segment_ = {0};
  int sum_ = 0;
};

}  // namespace

void NormalizeInto(std::string_view sql, NormalizedStatement& out) {
  out.text.clear();
  out.literals.clear();
  out.max_param = 0;
  out.unterminated = false;
  out.nesting = 0;
  thread_local std::vector<Edit> edits;
  edits.clear();
  Lexer(sql, out, edits).Run();
  // Emit: literal i becomes $(max_param + 1 + i); comments become one space.
  out.text.reserve(sql.size() + 8);
  size_t pos = 0;
  for (const Edit& e : edits) {
    out.text.append(sql.substr(pos, e.start - pos));
    if (e.literal >= 0) {
      // Keep token boundaries: "u.9id" is three tokens, "u$1id" would be one identifier.
      if (e.start > 0 && IsIdentChar(sql[e.start - 1])) out.text.push_back(' ');
      out.text.push_back('$');
      absl::StrAppend(&out.text, out.max_param + 1 + e.literal);
      // And after a quoted literal: "'a'6" is a string then a number (a syntax error) where
      // "$16" would be one parameter, and "'a'b" is a string with an alias where "$1b" is
      // junk. After a number the characters stay attached: "3d" and "$1d" are both junk.
      const Literal::Kind kind = out.literals[e.literal].kind;
      if (kind != Literal::Kind::kInteger && kind != Literal::Kind::kFloat &&
          e.end < sql.size() && IsIdentChar(sql[e.end])) {
        out.text.push_back(' ');
      }
    } else {
      out.text.push_back(' ');
    }
    pos = e.end;
  }
  out.text.append(sql.substr(pos));
  // The highest client parameter is part of the key: "$4" means a literal when max_param is 3
  // and a client parameter when it is 4.
  out.text.push_back('\0');
  absl::StrAppend(&out.text, out.max_param);
}

NormalizedStatement Normalize(std::string_view sql) {
  NormalizedStatement out;
  NormalizeInto(sql, out);
  return out;
}

}  // namespace shardgate::routing
