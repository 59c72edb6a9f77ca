// Private: a file's first bytes mapped read-only, for qpdf's processMemoryFile. The page cache
// serves them: no copy on the heap, and no seek system call per token as a FILE* source makes.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace kyso::signer {

class MappedFile {
  public:
    // Bytes [0, end) of the file at `path` (end < 0: the whole file); data() is null when the
    // file cannot be opened or is shorter than `end`, or is empty.
    MappedFile(const std::string& path, long long end = -1) {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            return;
        }
        struct stat st {};
        if (::fstat(fd, &st) == 0) {
            if (end < 0) {
                end = st.st_size;
            }
            if (end > 0 && end <= st.st_size) {
                void* p =
                    ::mmap(nullptr, static_cast<std::size_t>(end), PROT_READ, MAP_PRIVATE, fd, 0);
                if (p != MAP_FAILED) {
                    m_data = static_cast<const char*>(p);
                    m_size = static_cast<std::size_t>(end);
                }
            }
        }
        ::close(fd);
    }
    ~MappedFile() {
        if (m_data != nullptr) {
            ::munmap(const_cast<char*>(m_data), m_size);
        }
    }
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const char* data() const { return m_data; }
    std::size_t size() const { return m_size; }

  private:
    const char* m_data = nullptr;
    std::size_t m_size = 0;
};

}  // namespace kyso::signer
