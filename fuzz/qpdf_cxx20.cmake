# qpdf 11.3 (Debian 12) declares JSON::JSON_array, which holds a std::vector<JSON>, with an inline
# defaulted destructor inside class JSON, where JSON is still incomplete. In C++20 the vector's
# destructor is constexpr and clang instantiates it there, so no clang build that includes
# <qpdf/QPDF.hh> compiles (qpdf issue 942, fixed in qpdf 11.4; gcc defers it and is not affected).
# For the clang (KYSO_FUZZ) build only, this writes a copy of JSON.hh with that destructor
# defined after the class, as qpdf 11.4 does, into an include directory searched first. The layout
# and the virtual table (keyed to JSON_array::write, in libqpdf) are unchanged.
set(_qpdf_json "")
foreach(dir IN LISTS QPDF_INCLUDE_DIRS ITEMS /usr/include)
  if(EXISTS "${dir}/qpdf/JSON.hh")
    set(_qpdf_json "${dir}/qpdf/JSON.hh")
    break()
  endif()
endforeach()
if(NOT _qpdf_json)
  message(FATAL_ERROR "qpdf/JSON.hh not found")
endif()
file(READ "${_qpdf_json}" _text)
set(_decl "        virtual ~JSON_array() = default;\n")
string(FIND "${_text}" "${_decl}" _at)
if(_at GREATER -1)
  string(REPLACE "${_decl}" "        virtual ~JSON_array();\n" _text "${_text}")
  string(FIND "${_text}" "\n};\n" _end REVERSE)
  math(EXPR _after "${_end} + 4")
  string(SUBSTRING "${_text}" 0 ${_after} _head)
  string(SUBSTRING "${_text}" ${_after} -1 _tail)
  set(_text "${_head}\ninline JSON::JSON_array::~JSON_array() = default;\n${_tail}")
  file(WRITE "${CMAKE_BINARY_DIR}/qpdf-cxx20/qpdf/JSON.hh" "${_text}")
  include_directories(BEFORE SYSTEM "${CMAKE_BINARY_DIR}/qpdf-cxx20")
endif()
