// multipart/form-data: streams through the body file, splitting it at "\r\n--boundary".
#include "gateway/multipart.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <functional>
#include <optional>
#include <string_view>

#include "gateway/temp_file.h"

namespace quilt::gateway {
namespace {

constexpr size_t kBlock = 64 << 10;           // read unit: memory use is about this, not the body
constexpr size_t kMaxValueBytes = 1 << 20;    // a field kept in memory
constexpr size_t kMaxHeaderBytes = 16 << 10;  // one part's header block
constexpr size_t kMaxParts = 64;              // bounds memory at kMaxParts * kMaxValueBytes
constexpr size_t kMaxBoundary = 70;           // RFC 2046

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "form-data; name=\"config\"; filename=config.json" → value and lower-cased parameter names.
struct HeaderValue {
  std::string value;  // lower-cased
  std::map<std::string, std::string> params;
};

std::optional<HeaderValue> parse_header_value(std::string_view text) {
  HeaderValue out;
  size_t i = text.find(';');
  out.value = lower(trim(text.substr(0, i)));
  while (i != std::string_view::npos && i < text.size()) {
    ++i;  // past ';'
    const size_t eq = text.find_first_of("=;", i);
    std::string name = lower(trim(text.substr(i, eq == std::string_view::npos ? eq : eq - i)));
    if (eq == std::string_view::npos || text[eq] == ';') {  // a bare parameter: no value
      if (!name.empty()) out.params.emplace(std::move(name), "");
      i = eq;
      continue;
    }
    i = eq + 1;
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    std::string value;
    if (i < text.size() && text[i] == '"') {
      // Quoted string. Only \" and \\ are escapes: browsers send Windows paths unescaped.
      bool closed = false;
      for (++i; i < text.size(); ++i) {
        if (text[i] == '\\' && i + 1 < text.size() && (text[i + 1] == '"' || text[i + 1] == '\\')) {
          value.push_back(text[++i]);
        } else if (text[i] == '"') {
          closed = true;
          ++i;
          break;
        } else {
          value.push_back(text[i]);
        }
      }
      if (!closed) return std::nullopt;
      i = text.find(';', i);
    } else {
      const size_t end = text.find(';', i);
      value = std::string(trim(text.substr(i, end == std::string_view::npos ? end : end - i)));
      i = end;
    }
    if (!name.empty()) out.params.emplace(std::move(name), std::move(value));
  }
  return out;
}

// Buffered reading of the body file. It starts with a virtual "\r\n" so that a first boundary
// at the very start of the body matches the same "\r\n--boundary" delimiter as the others.
class Reader {
 public:
  explicit Reader(std::FILE* file) : file_(file), buf_("\r\n") {}

  std::string_view avail() const { return std::string_view(buf_).substr(pos_); }
  void consume(size_t n) { pos_ += n; }
  bool io_error() const { return io_error_; }

  // Appends one more block; false at the end of the file (or on a read error: io_error()).
  bool fill() {
    if (eof_) return false;
    buf_.erase(0, pos_);  // only a delimiter's length or a header block is ever carried over
    pos_ = 0;
    const size_t old = buf_.size();
    buf_.resize(old + kBlock);
    const size_t n = std::fread(buf_.data() + old, 1, kBlock, file_);
    buf_.resize(old + n);
    if (n == 0) {
      eof_ = true;
      io_error_ = std::ferror(file_) != 0;
    }
    return n > 0;
  }

  bool ensure(size_t n) {
    while (avail().size() < n) {
      if (!fill()) return false;
    }
    return true;
  }

  // Feeds the bytes before the next `delim` to `sink` and consumes the delimiter; false when the
  // file ends first. Everything but a possible partial delimiter at the end is passed on at once.
  Result<bool> copy_until(std::string_view delim,
                          const std::function<Status(std::string_view)>& sink) {
    for (;;) {
      const std::string_view view = avail();
      const size_t at = view.find(delim);
      if (at != std::string_view::npos) {
        QUILT_RETURN_IF_ERROR(sink(view.substr(0, at)));
        consume(at + delim.size());
        return true;
      }
      if (view.size() >= delim.size()) {
        const size_t safe = view.size() - (delim.size() - 1);
        QUILT_RETURN_IF_ERROR(sink(view.substr(0, safe)));
        consume(safe);
      }
      if (!fill()) return false;
    }
  }

 private:
  std::FILE* file_;
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
  bool io_error_ = false;
};

Result<std::string> boundary_of(const std::string& content_type) {
  std::optional<HeaderValue> ct = parse_header_value(content_type);
  if (!ct || ct->value != "multipart/form-data") {
    return Status::UnsupportedMedia("expected Content-Type multipart/form-data, got '" +
                                    content_type + "'");
  }
  auto it = ct->params.find("boundary");
  if (it == ct->params.end() || it->second.empty()) {
    return Status::InvalidArgument("multipart/form-data Content-Type without a boundary");
  }
  if (it->second.size() > kMaxBoundary) {
    return Status::InvalidArgument("multipart boundary longer than 70 characters");
  }
  return it->second;
}

// The header block of one part, up to and without its blank line.
Result<std::string> read_part_headers(Reader& in) {
  if (in.ensure(2) && in.avail().substr(0, 2) == "\r\n") {  // no header lines at all
    in.consume(2);
    return std::string();
  }
  for (;;) {
    const std::string_view view = in.avail();
    const size_t end = view.find("\r\n\r\n");
    if (end != std::string_view::npos) {
      std::string block(view.substr(0, end));
      in.consume(end + 4);
      return block;
    }
    if (view.size() > kMaxHeaderBytes) {
      return Status::InvalidArgument("multipart part headers longer than 16 KiB");
    }
    if (!in.fill()) {
      if (in.io_error()) return Status::IOError("cannot read the request body");
      return Status::InvalidArgument("multipart body ends inside a part's headers");
    }
  }
}

// Fills name, filename and content_type of `part` from its header block.
Status parse_part_headers(std::string_view block, MultipartPart& part) {
  std::map<std::string, std::string> headers;
  std::string* last = nullptr;
  while (!block.empty()) {
    const size_t eol = block.find("\r\n");
    const std::string_view line = block.substr(0, eol);
    block = eol == std::string_view::npos ? std::string_view() : block.substr(eol + 2);
    if (line.empty()) continue;
    if ((line.front() == ' ' || line.front() == '\t') && last != nullptr) {  // obsolete folding
      last->append(" ").append(trim(line));
      continue;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || trim(line.substr(0, colon)).empty()) {
      return Status::InvalidArgument("malformed multipart part header line: '" +
                                     std::string(line.substr(0, 100)) + "'");
    }
    auto [it, inserted] = headers.emplace(lower(trim(line.substr(0, colon))),
                                          std::string(trim(line.substr(colon + 1))));
    last = &it->second;
  }
  auto disposition = headers.find("content-disposition");
  if (disposition == headers.end()) {
    return Status::InvalidArgument("multipart part without a Content-Disposition header");
  }
  std::optional<HeaderValue> cd = parse_header_value(disposition->second);
  if (!cd || cd->value != "form-data") {
    return Status::InvalidArgument("multipart part with Content-Disposition '" +
                                   disposition->second + "', expected form-data");
  }
  if (auto name = cd->params.find("name"); name != cd->params.end()) part.name = name->second;
  if (part.name.empty()) return Status::InvalidArgument("multipart part without a name");
  if (auto file = cd->params.find("filename"); file != cd->params.end())
    part.filename = file->second;
  if (auto ct = headers.find("content-type"); ct != headers.end()) part.content_type = ct->second;
  return Status::OK();
}

}  // namespace

Result<MultipartForm> parse_multipart(const std::filesystem::path& body_file,
                                      const std::string& content_type,
                                      const std::vector<std::string>& file_parts,
                                      const std::filesystem::path& tmp_dir) {
  QUILT_ASSIGN_OR_RETURN(const std::string boundary, boundary_of(content_type));
  if (body_file.empty()) return Status::InvalidArgument("empty multipart body");
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(body_file.c_str(), "rb"),
                                                       &std::fclose);
  if (!file) return Status::IOError("cannot open the request body " + body_file.string());

  // Part files are registered here as soon as they exist, so an error below removes them.
  auto remover = std::make_shared<TempFileRemover>();
  MultipartForm form;
  form.owner = remover;
  const std::string delim = "\r\n--" + boundary;
  Reader in(file.get());
  auto ended_early = [&](const std::string& what) {
    if (in.io_error()) return Status::IOError("cannot read the request body " + body_file.string());
    return Status::InvalidArgument(what);
  };

  QUILT_ASSIGN_OR_RETURN(bool found,
                         in.copy_until(delim, [](std::string_view) { return Status::OK(); }));
  if (!found) return ended_early("multipart body without its boundary '--" + boundary + "'");

  for (;;) {
    // After a delimiter: "--" closes the body; otherwise optional padding, then CRLF.
    if (!in.ensure(2)) return ended_early("multipart body without a closing boundary");
    if (in.avail().substr(0, 2) == "--") break;  // the epilogue after it is ignored
    while (in.ensure(1) && (in.avail()[0] == ' ' || in.avail()[0] == '\t')) in.consume(1);
    if (!in.ensure(2)) return ended_early("multipart body without a closing boundary");
    if (in.avail().substr(0, 2) != "\r\n") {
      return Status::InvalidArgument("malformed multipart boundary line (text after the boundary)");
    }
    in.consume(2);
    if (form.parts.size() >= kMaxParts) {
      return Status::InvalidArgument("more than " + std::to_string(kMaxParts) + " multipart parts");
    }

    QUILT_ASSIGN_OR_RETURN(const std::string block, read_part_headers(in));
    MultipartPart part;
    QUILT_RETURN_IF_ERROR(parse_part_headers(block, part));
    if (form.parts.count(part.name) != 0) {
      return Status::InvalidArgument("multipart part '" + part.name + "' appears twice");
    }

    std::optional<TempFileWriter> out;
    if (std::find(file_parts.begin(), file_parts.end(), part.name) != file_parts.end()) {
      QUILT_ASSIGN_OR_RETURN(TempFileWriter writer, TempFileWriter::create(tmp_dir, "quilt-part-"));
      remover->paths.push_back(writer.path());
      part.file = writer.path();
      out.emplace(std::move(writer));
    }
    auto sink = [&](std::string_view data) -> Status {
      if (out) return out->write(data.data(), data.size());
      if (part.value.size() + data.size() > kMaxValueBytes) {
        return Status::InvalidArgument("multipart field '" + part.name + "' is over 1 MiB");
      }
      part.value.append(data);
      return Status::OK();
    };
    QUILT_ASSIGN_OR_RETURN(found, in.copy_until(delim, sink));
    if (!found) {
      return ended_early("multipart body ends inside part '" + part.name +
                         "' (no closing boundary)");
    }
    if (out) QUILT_RETURN_IF_ERROR(out->close());
    std::string name = part.name;
    form.parts.emplace(std::move(name), std::move(part));
  }
  return form;
}

}  // namespace quilt::gateway
