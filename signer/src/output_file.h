// Files of the signer: input streamed in chunks, output written whole or not at all. Private
// to signer/.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "kyso/hsm/result.h"

namespace kyso::signer {

// Streams the file through `fn(chunk, n)`; false on a read error.
template <typename Fn>
bool streamFile(const std::string& path, std::uint64_t* size, Fn&& fn) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    std::vector<char> buf(1 << 16);
    std::uint64_t total = 0;
    bool ok = true;
    for (;;) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            ok = false;
            break;
        }
        if (n == 0) {
            break;
        }
        if (!fn(buf.data(), static_cast<std::size_t>(n))) {
            ok = false;
            break;
        }
        total += static_cast<std::uint64_t>(n);
    }
    ::close(fd);
    *size = total;
    return ok;
}

// Writes `data` fully or fails.
inline bool writeAll(int fd, const char* data, std::size_t n) {
    while (n > 0) {
        const ssize_t w = ::write(fd, data, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        data += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

// A temporary output that is removed unless committed.
class TempOutput {
  public:
    explicit TempOutput(std::string target) : m_target(std::move(target)) {
        m_path = m_target + ".kyso-tmp-XXXXXX";
        m_fd = ::mkstemp(m_path.data());
    }
    ~TempOutput() {
        if (m_fd >= 0) {
            ::close(m_fd);
        }
        if (!m_committed) {
            ::unlink(m_path.c_str());
        }
    }
    TempOutput(const TempOutput&) = delete;
    TempOutput& operator=(const TempOutput&) = delete;
    bool ok() const { return m_fd >= 0; }
    int fd() const { return m_fd; }
    bool commit(bool durable) {
        if ((durable && ::fsync(m_fd) != 0) || ::close(m_fd) != 0) {
            m_fd = -1;
            return false;
        }
        m_fd = -1;
        ::chmod(m_path.c_str(), 0644);
        if (::rename(m_path.c_str(), m_target.c_str()) != 0) {
            return false;
        }
        m_committed = true;
        return true;
    }

  private:
    std::string m_target;
    std::string m_path;
    int m_fd = -1;
    bool m_committed = false;
};

// Runs `write(fd)` into a temporary file beside `outPath` and renames it into place only if
// `write` succeeds: OUT is never partial. `write` returns a Result.
template <typename Write>
auto writeAtomically(const std::string& outPath, bool durable, Write&& write)
    -> decltype(write(0)) {
    TempOutput out(outPath);
    if (!out.ok()) {
        return Error::make("io.write", "cannot create the output file");
    }
    auto r = write(out.fd());
    if (!r) {
        return r;
    }
    if (!out.commit(durable)) {
        return Error::make("io.write", "cannot finish the output file");
    }
    return r;
}

}  // namespace kyso::signer
