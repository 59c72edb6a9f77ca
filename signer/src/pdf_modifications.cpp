// What later incremental updates changed after a signed revision, after pyHanko's difference
// analysis and DSS, made strict: every changed object of the signed revision must be explained by
// a role it plays there (a form field, an annotation, the DSS...), or the change is "Other".
//
// Objects are compared through qpdf: the signed revision is read from its own bytes, and an object
// is looked at when its cross-reference entry differs between the two revisions (not only when it
// lies after the signed bytes: a later entry may point back at an older definition).
#include "pdf_modifications.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <qpdf/Buffer.hh>
#include <qpdf/QPDFObjectHandle.hh>
#include <qpdf/QPDFXRefEntry.hh>
#include <set>
#include <utility>
#include <vector>

#include "mapped_file.h"

namespace kyso::signer {

const char* modificationName(Modification m) noexcept {
    switch (m) {
        case Modification::None:
            return "NONE";
        case Modification::SignaturesOnly:
            return "SIGNATURES_ONLY";
        case Modification::FormFilling:
            return "FORM_FILLING";
        case Modification::Annotations:
            return "ANNOTATIONS";
        case Modification::Other:
            return "OTHER";
    }
    return "OTHER";
}

namespace {

constexpr std::size_t kMaxXrefEntries = 500000;
constexpr int kMaxDepth = 64;              // field trees, page trees, /Parent chains
constexpr std::size_t kListedObjects = 5;  // objects named in the "other objects" note

using Og = QPDFObjGen;
using XRef = std::map<QPDFObjGen, QPDFXRefEntry>;

// What an object of the signed revision is there.
enum class Kind {
    Catalog,
    Info,
    Metadata,
    AcroForm,
    FormResources,  // the AcroForm's /DR and its /Font dictionary
    FieldList,      // an indirect /Fields array, or the /Kids of a non-terminal field
    FieldNode,      // a non-terminal field
    SignedField,    // a signature field with a value, its widgets and their appearances
    EmptySignatureField,
    FormField,  // any other terminal field
    PageTree,   // an intermediate /Pages node or its /Kids array
    Content,    // reachable from a page's /Contents or /Resources
    Page,
    AnnotsArray,
    Annotation,  // not a widget of a field
    Dss,
};

enum class Part {
    Dict,        // the field, its widget, a /Kids array: judged by the keys that changed
    Appearance,  // an appearance stream or a dictionary of them
    Value,       // an indirect /V
};

struct Role {
    Role(Kind k, Part p = Part::Dict, std::string n = {}, int pg = 0)
        : kind(k), part(p), name(std::move(n)), page(pg) {}
    Kind kind;
    Part part;
    std::string name;  // the field's name, or a note
    int page;          // 1-based
    bool operator==(const Role& o) const {
        return kind == o.kind && part == o.part && name == o.name && page == o.page;
    }
};

bool sameEntry(const QPDFXRefEntry& a, const QPDFXRefEntry& b) {
    if (a.getType() != b.getType()) {
        return false;
    }
    if (a.getType() == 1) {
        return a.getOffset() == b.getOffset();
    }
    if (a.getType() == 2) {
        return a.getObjStreamNumber() == b.getObjStreamNumber() &&
               a.getObjStreamIndex() == b.getObjStreamIndex();
    }
    return true;
}

// The dictionary of a dictionary or a stream; null otherwise.
QPDFObjectHandle dictOf(QPDFObjectHandle h) {
    if (h.isStream()) {
        return h.getDict();
    }
    return h.isDictionary() ? h : QPDFObjectHandle::newNull();
}

// A key of a dictionary (or of a stream's dictionary); null for anything else.
QPDFObjectHandle keyOf(QPDFObjectHandle h, const std::string& key) {
    QPDFObjectHandle d = dictOf(h);
    return d.isDictionary() ? d.getKey(key) : QPDFObjectHandle::newNull();
}

// A comparable rendering of an object's own content: references stay references.
std::string contentOf(QPDFObjectHandle h) {
    if (h.isStream()) {
        std::string s = "stream " + h.getDict().unparse() + "\n";
        std::shared_ptr<Buffer> data = h.getRawStreamData();
        s.append(reinterpret_cast<const char*>(data->getBuffer()), data->getSize());
        return s;
    }
    return h.unparseResolved();
}

// The items of a /Fields, /Kids or /Annots array by identity: the object for indirect items,
// the serialisation for direct ones.
std::map<std::string, QPDFObjectHandle> itemsOf(QPDFObjectHandle list) {
    std::map<std::string, QPDFObjectHandle> out;
    if (!list.isArray()) {
        return out;
    }
    for (auto& item : list.getArrayAsVector()) {
        if (item.isIndirect()) {
            out.emplace(item.getObjGen().unparse(' '), item);
        } else if (!item.isNull()) {
            out.emplace("direct " + item.unparse(), item);
        }
    }
    return out;
}

constexpr int kEquivalenceBudget = 20000;  // objects compared for one value

// Whether a value of the signed revision (`o`) and one of the final document (`n`) show the same
// thing: equal scalars, or containers with equivalent items, where a reference to the same object
// number is equal (that object is judged on its own) and a reference to another object is
// followed (a new copy of an unchanged dictionary is not a change).
bool equivalent(QPDFObjectHandle o, QPDFObjectHandle n, int depth, int& budget,
                std::set<std::pair<Og, Og>>& assumed) {
    if (--budget < 0 || depth > kMaxDepth) {
        return false;
    }
    if (o.isIndirect() && n.isIndirect()) {
        if (o.getObjGen() == n.getObjGen() ||
            !assumed.insert({o.getObjGen(), n.getObjGen()}).second) {
            return true;
        }
    }
    if (o.isStream() || n.isStream()) {
        if (!o.isStream() || !n.isStream()) {
            return false;
        }
        std::shared_ptr<Buffer> od = o.getRawStreamData();
        std::shared_ptr<Buffer> nd = n.getRawStreamData();
        if (od->getSize() != nd->getSize() ||
            (od->getSize() > 0 && std::memcmp(od->getBuffer(), nd->getBuffer(), od->getSize()))) {
            return false;
        }
        QPDFObjectHandle a = o.getDict().shallowCopy();
        QPDFObjectHandle b = n.getDict().shallowCopy();
        a.removeKey("/Length");
        b.removeKey("/Length");
        return equivalent(a, b, depth + 1, budget, assumed);
    }
    if (o.isDictionary() || n.isDictionary()) {
        if (!o.isDictionary() || !n.isDictionary() || o.getKeys() != n.getKeys()) {
            return false;
        }
        for (const auto& k : o.getKeys()) {
            if (!equivalent(o.getKey(k), n.getKey(k), depth + 1, budget, assumed)) {
                return false;
            }
        }
        return true;
    }
    if (o.isArray() || n.isArray()) {
        if (!o.isArray() || !n.isArray() || o.getArrayNItems() != n.getArrayNItems()) {
            return false;
        }
        for (int i = 0; i < o.getArrayNItems(); ++i) {
            if (!equivalent(o.getArrayItem(i), n.getArrayItem(i), depth + 1, budget, assumed)) {
                return false;
            }
        }
        return true;
    }
    return o.unparseResolved() == n.unparseResolved();
}

bool equivalent(QPDFObjectHandle o, QPDFObjectHandle n) {
    int budget = kEquivalenceBudget;
    std::set<std::pair<Og, Og>> assumed;
    try {
        return equivalent(o, n, 0, budget, assumed);
    } catch (const std::exception&) {
        return false;
    }
}

// The keys whose values are not equivalent; "(type)" when either side is not a dictionary (or
// one is a stream and the other is not).
std::set<std::string> changedKeys(QPDFObjectHandle o, QPDFObjectHandle n) {
    std::set<std::string> out;
    if (o.isStream() != n.isStream()) {
        out.insert("(type)");
    }
    QPDFObjectHandle od = dictOf(o);
    QPDFObjectHandle nd = dictOf(n);
    std::set<std::string> keys;
    if (od.isDictionary()) {
        keys = od.getKeys();
    }
    if (nd.isDictionary()) {
        for (const auto& k : nd.getKeys()) {
            keys.insert(k);
        }
    }
    for (const auto& k : keys) {
        if (!equivalent(keyOf(od, k), keyOf(nd, k))) {
            out.insert(k);
        }
    }
    if (!od.isDictionary() || !nd.isDictionary()) {
        out.insert("(type)");
    }
    return out;
}

// An inheritable field attribute (/FT, /V), looked up through /Parent.
QPDFObjectHandle inherited(QPDFObjectHandle h, const std::string& key) {
    std::set<Og> seen;
    for (int depth = 0; depth < kMaxDepth && h.isDictionary(); ++depth) {
        if (h.isIndirect() && !seen.insert(h.getObjGen()).second) {
            break;
        }
        QPDFObjectHandle v = h.getKey(key);
        if (!v.isNull()) {
            return v;
        }
        h = h.getKey("/Parent");
    }
    return QPDFObjectHandle::newNull();
}

// The fully qualified name of a field (or of the field a widget belongs to).
std::string fieldName(QPDFObjectHandle h) {
    std::vector<std::string> parts;
    std::set<Og> seen;
    for (int depth = 0; depth < kMaxDepth && h.isDictionary(); ++depth) {
        if (h.isIndirect() && !seen.insert(h.getObjGen()).second) {
            break;
        }
        QPDFObjectHandle t = h.getKey("/T");
        if (t.isString()) {
            parts.push_back(t.getUTF8Value());
        }
        h = h.getKey("/Parent");
    }
    std::string out;
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        out += (out.empty() ? "" : ".") + *it;
    }
    return out.empty() ? "(unnamed)" : out;
}

bool isDocumentTimestamp(QPDFObjectHandle v) {
    return v.isDictionary() && (keyOf(v, "/SubFilter").isNameAndEquals("/ETSI.RFC3161") ||
                                keyOf(v, "/Type").isNameAndEquals("/DocTimeStamp"));
}

class Analyzer {
  public:
    Analyzer(QPDF& oldDoc, QPDF& newDoc, ModificationReport& report)
        : m_old(oldDoc), m_new(newDoc), m_report(report) {}

    void run() {
        m_oldX = m_old.getXRefTable();
        m_newX = m_new.getXRefTable();
        if (m_oldX.size() > kMaxXrefEntries || m_newX.size() > kMaxXrefEntries) {
            m_report.incomplete = true;
            raise(Modification::Other, "too many objects to compare the revisions");
            return;
        }
        m_report.docMdp = docMdp();
        std::set<Og> candidates = candidateObjects();
        scanSignedRevision(candidates);
        for (const Og& og : candidates) {
            compareObject(og);
        }
        buildRoles();
        compareCatalog();
        compareTrailer();
        for (const Og& og : m_changed) {
            classify(og);
        }
        if (m_deleted > 0) {
            raise(Modification::Other, std::to_string(m_deleted) +
                                           " object(s) of the signed revision are no longer in "
                                           "the document's cross-reference table");
        }
        if (!m_otherObjects.empty()) {
            std::string note = "objects outside the page content, forms and annotations changed:";
            for (std::size_t i = 0; i < m_otherObjects.size() && i < kListedObjects; ++i) {
                note += (i == 0 ? " " : ", ") + m_otherObjects[i];
            }
            if (m_otherObjects.size() > kListedObjects) {
                note += " and " + std::to_string(m_otherObjects.size() - kListedObjects) + " more";
            }
            raise(Modification::Other, note);
        }
    }

  private:
    void raise(Modification level, const std::string& note, bool validationData = false) {
        m_report.level = std::max(m_report.level, level);
        if (!validationData) {
            m_report.validationDataOnly = false;
        }
        if (!note.empty() &&
            std::find(m_report.notes.begin(), m_report.notes.end(), note) == m_report.notes.end()) {
            m_report.notes.push_back(note);
        }
    }

    QPDFObjectHandle oldRoot() { return m_old.getTrailer().getKey("/Root"); }
    QPDFObjectHandle newRoot() { return m_new.getTrailer().getKey("/Root"); }

    // /Perms /DocMDP of the signed revision: the /P of its DocMDP transform, 2 when absent.
    int docMdp() {
        QPDFObjectHandle sig = keyOf(keyOf(oldRoot(), "/Perms"), "/DocMDP");
        if (!sig.isDictionary()) {
            return 0;
        }
        QPDFObjectHandle refs = sig.getKey("/Reference");
        if (refs.isArray()) {
            for (auto& r : refs.getArrayAsVector()) {
                if (!keyOf(r, "/TransformMethod").isNameAndEquals("/DocMDP")) {
                    continue;
                }
                QPDFObjectHandle p = keyOf(keyOf(r, "/TransformParams"), "/P");
                if (p.isNull()) {
                    return 2;
                }
                // A value outside 1..3 is read as the strictest.
                const long long v = p.isInteger() ? p.getIntValue() : 1;
                return v >= 1 && v <= 3 ? static_cast<int>(v) : 1;
            }
        }
        return 2;
    }

    // Objects of the signed revision that may differ: those whose entry changed, that live in an
    // object stream that changed, or that were deleted.
    std::set<Og> candidateObjects() {
        std::set<Og> out;
        for (const auto& [og, entry] : m_newX) {
            auto it = m_oldX.find(og);
            if (it == m_oldX.end()) {
                continue;  // new: judged through what refers to it
            }
            if (!sameEntry(it->second, entry)) {
                out.insert(og);
            } else if (entry.getType() == 2) {
                const Og stream(entry.getObjStreamNumber(), 0);
                auto os = m_oldX.find(stream);
                auto ns = m_newX.find(stream);
                if (os == m_oldX.end() || ns == m_newX.end() ||
                    !sameEntry(os->second, ns->second)) {
                    out.insert(og);
                }
            }
        }
        for (const auto& [og, entry] : m_oldX) {
            if (!m_newX.count(og)) {
                out.insert(og);
            }
        }
        return out;
    }

    // Every object of the signed revision: the references it holds to objects the revision does
    // not define (a later definition of one changes what the signed revision shows), and streams
    // whose indirect /Length is a candidate.
    void scanSignedRevision(std::set<Og>& candidates) {
        std::set<Og> dangling;
        auto scan = [&](QPDFObjectHandle top) {
            std::vector<QPDFObjectHandle> stack{top};
            while (!stack.empty()) {
                QPDFObjectHandle h = stack.back();
                stack.pop_back();
                if (h.isArray()) {
                    for (auto& item : h.getArrayAsVector()) {
                        if (item.isIndirect()) {
                            if (!m_oldX.count(item.getObjGen())) {
                                dangling.insert(item.getObjGen());
                            }
                        } else {
                            stack.push_back(item);
                        }
                    }
                } else if (h.isDictionary()) {
                    for (auto& [key, item] : h.getDictAsMap()) {
                        if (item.isIndirect()) {
                            if (!m_oldX.count(item.getObjGen())) {
                                dangling.insert(item.getObjGen());
                            }
                        } else {
                            stack.push_back(item);
                        }
                    }
                }
            }
        };
        // Of the trailer, only what readers use: other keys (LibreOffice's /AdditionalStreams...)
        // may name numbers that later revisions use for their own objects.
        for (const char* key : {"/Root", "/Encrypt"}) {
            QPDFObjectHandle v = m_old.getTrailer().getKey(key);
            if (v.isIndirect() && !m_oldX.count(v.getObjGen())) {
                dangling.insert(v.getObjGen());
            }
        }
        QPDFObjectHandle info = m_old.getTrailer().getKey("/Info");
        if (info.isIndirect() && !m_oldX.count(info.getObjGen()) &&
            m_newX.count(info.getObjGen())) {
            raise(Modification::SignaturesOnly, "document information changed");
        }
        for (const auto& [og, entry] : m_oldX) {
            try {
                QPDFObjectHandle h = m_old.getObjectByObjGen(og);
                if (h.isStream()) {
                    QPDFObjectHandle length = h.getDict().getKey("/Length");
                    if (length.isIndirect() && candidates.count(length.getObjGen())) {
                        candidates.insert(og);
                    }
                    scan(h.getDict());
                } else {
                    scan(h);
                }
            } catch (const std::exception&) {
                m_report.incomplete = true;
                raise(Modification::Other,
                      "object " + og.unparse(' ') + " of the signed revision cannot be read");
            }
        }
        for (const Og& og : dangling) {
            if (m_newX.count(og)) {
                raise(Modification::Other,
                      "an object the signed revision referred to but did not define was added (" +
                          og.unparse(' ') + ")");
            }
        }
    }

    void compareObject(const Og& og) {
        try {
            QPDFObjectHandle o = m_old.getObjectByObjGen(og);
            if (!m_newX.count(og)) {
                if (!o.isNull()) {
                    m_changed.insert(og);
                }
                return;
            }
            QPDFObjectHandle n = m_new.getObjectByObjGen(og);
            if (contentOf(o) != contentOf(n)) {
                m_changed.insert(og);
            }
        } catch (const std::exception&) {
            m_changed.insert(og);  // unreadable on either side: judged as changed
        }
    }

    // --- Roles in the signed revision -----------------------------------------------------

    void addRole(QPDFObjectHandle h, const Role& role) {
        if (!h.isIndirect() || !m_oldX.count(h.getObjGen())) {
            return;
        }
        auto& roles = m_roles[h.getObjGen()];
        if (std::find(roles.begin(), roles.end(), role) == roles.end()) {
            roles.push_back(role);
        }
    }

    // The appearance dictionary of an annotation, its /N /D /R entries and their state streams.
    void addAppearances(QPDFObjectHandle annot, const Role& role) {
        QPDFObjectHandle ap = keyOf(annot, "/AP");
        addRole(ap, role);
        if (!ap.isDictionary()) {
            return;
        }
        for (const char* which : {"/N", "/D", "/R"}) {
            QPDFObjectHandle v = ap.getKey(which);
            addRole(v, role);
            if (v.isDictionary()) {
                for (auto& [state, stream] : v.getDictAsMap()) {
                    addRole(stream, role);
                }
            }
        }
    }

    // Everything reachable from `start` through references, each object once.
    template <typename Visit>
    void reach(QPDFObjectHandle start, std::set<Og>& seen, bool stopAtPages, Visit visit) {
        std::vector<QPDFObjectHandle> stack{start};
        while (!stack.empty()) {
            QPDFObjectHandle h = stack.back();
            stack.pop_back();
            if (h.isIndirect()) {
                const Og og = h.getObjGen();
                if (!m_oldX.count(og) || !seen.insert(og).second) {
                    continue;
                }
                if (stopAtPages && h.isDictionary() &&
                    (h.getKey("/Type").isNameAndEquals("/Page") ||
                     h.getKey("/Type").isNameAndEquals("/Pages"))) {
                    continue;
                }
                visit(h);
            }
            if (h.isArray()) {
                for (auto& item : h.getArrayAsVector()) {
                    stack.push_back(item);
                }
            } else if (h.isDictionary() || h.isStream()) {
                for (auto& [key, item] : dictOf(h).getDictAsMap()) {
                    // Up the tree, never down into content.
                    if (!stopAtPages || (key != "/Parent" && key != "/P")) {
                        stack.push_back(item);
                    }
                }
            }
        }
    }

    void buildRoles() {
        QPDFObjectHandle root = oldRoot();
        addRole(root, {Kind::Catalog});
        addRole(m_old.getTrailer().getKey("/Info"), {Kind::Info});
        QPDFObjectHandle metadata = keyOf(root, "/Metadata");
        if (metadata.isStream()) {
            addRole(metadata, {Kind::Metadata});
        }
        QPDFObjectHandle acroForm = keyOf(root, "/AcroForm");
        if (acroForm.isDictionary()) {
            addRole(acroForm, {Kind::AcroForm});
            QPDFObjectHandle dr = acroForm.getKey("/DR");
            addRole(dr, {Kind::FormResources});
            addRole(keyOf(dr, "/Font"), {Kind::FormResources});
            QPDFObjectHandle fields = acroForm.getKey("/Fields");
            addRole(fields, {Kind::FieldList, Part::Dict, ""});
            std::set<Og> seen;
            if (fields.isArray()) {
                for (auto& f : fields.getArrayAsVector()) {
                    walkField(f, "", "", 0, seen);
                }
            }
        }
        std::set<Og> seenPages;
        int pageNo = 0;
        walkPages(keyOf(root, "/Pages"), QPDFObjectHandle::newNull(), 0, seenPages, pageNo);
        std::set<Og> seenDss;
        reach(keyOf(root, "/DSS"), seenDss, false,
              [&](QPDFObjectHandle h) { addRole(h, {Kind::Dss}); });
    }

    void walkField(QPDFObjectHandle f, const std::string& prefix, const std::string& parentFt,
                   int depth, std::set<Og>& seen) {
        if (!f.isDictionary() || depth > kMaxDepth) {
            return;
        }
        if (f.isIndirect() && !seen.insert(f.getObjGen()).second) {
            return;
        }
        QPDFObjectHandle t = f.getKey("/T");
        const std::string name =
            t.isString() ? (prefix.empty() ? "" : prefix + ".") + t.getUTF8Value() : prefix;
        const std::string ft = f.getKey("/FT").isName() ? f.getKey("/FT").getName() : parentFt;
        QPDFObjectHandle kids = f.getKey("/Kids");
        std::vector<QPDFObjectHandle> fieldKids;
        std::vector<QPDFObjectHandle> widgetKids;
        if (kids.isArray()) {
            for (auto& k : kids.getArrayAsVector()) {
                if (k.isDictionary()) {
                    (k.hasKey("/T") ? fieldKids : widgetKids).push_back(k);
                }
            }
        }
        const std::string shown = name.empty() ? "(unnamed)" : name;
        if (!fieldKids.empty()) {
            addRole(f, {Kind::FieldNode, Part::Dict, shown});
            addRole(kids, {Kind::FieldList, Part::Dict, shown});
            for (auto& k : fieldKids) {
                walkField(k, name, ft, depth + 1, seen);
            }
            if (widgetKids.empty()) {
                return;
            }
        }
        Kind kind = Kind::FormField;
        if (ft == "/Sig") {
            kind = f.getKey("/V").isDictionary() ? Kind::SignedField : Kind::EmptySignatureField;
        }
        addRole(f, {kind, Part::Dict, shown});
        if (fieldKids.empty()) {
            addRole(kids, {kind, Part::Dict, shown});
        }
        addRole(f.getKey("/V"), {kind, Part::Value, shown});
        if (kind == Kind::SignedField) {
            addRole(keyOf(f.getKey("/V"), "/Reference"), {kind, Part::Value, shown});
        }
        std::vector<QPDFObjectHandle> widgets = widgetKids;
        if (!kids.isArray()) {
            widgets.push_back(f);  // merged field and widget
        }
        for (auto& w : widgets) {
            addRole(w, {kind, Part::Dict, shown});
            if (w.isIndirect()) {
                m_fieldWidgets.insert(w.getObjGen());
            }
            addAppearances(w, {kind, Part::Appearance, shown});
        }
    }

    void walkPages(QPDFObjectHandle node, QPDFObjectHandle resources, int depth, std::set<Og>& seen,
                   int& pageNo) {
        if (!node.isDictionary() || depth > kMaxDepth) {
            return;
        }
        if (node.isIndirect() && !seen.insert(node.getObjGen()).second) {
            return;
        }
        QPDFObjectHandle own = node.getKey("/Resources");
        if (!own.isNull()) {
            resources = own;
        }
        QPDFObjectHandle kids = node.getKey("/Kids");
        if (kids.isArray() && !node.getKey("/Type").isNameAndEquals("/Page")) {
            addRole(node, {Kind::PageTree});
            addRole(kids, {Kind::PageTree});
            for (auto& k : kids.getArrayAsVector()) {
                walkPages(k, resources, depth + 1, seen, pageNo);
            }
            return;
        }
        const int page = ++pageNo;
        const std::string p = "page " + std::to_string(page);
        addRole(node, {Kind::Page, Part::Dict, "", page});
        const std::string contentNote = p + ": content changed";
        reach(node.getKey("/Contents"), m_contentSeen, true, [&](QPDFObjectHandle h) {
            addRole(h, {Kind::Content, Part::Dict, contentNote});
        });
        const std::string resourcesNote = p + ": resources changed";
        reach(resources, m_contentSeen, true, [&](QPDFObjectHandle h) {
            addRole(h, {Kind::Content, Part::Dict, resourcesNote});
        });
        QPDFObjectHandle annots = node.getKey("/Annots");
        addRole(annots, {Kind::AnnotsArray, Part::Dict, "", page});
        if (!annots.isArray()) {
            return;
        }
        for (auto& a : annots.getArrayAsVector()) {
            if (!a.isDictionary() || (a.isIndirect() && m_fieldWidgets.count(a.getObjGen()))) {
                continue;
            }
            // Annotations, and widgets no field of the form owns.
            addRole(a, {Kind::Annotation, Part::Dict, "", page});
            addAppearances(a, {Kind::Annotation, Part::Appearance, "", page});
        }
    }

    // --- Comparisons ------------------------------------------------------------------------

    // A signature value that appeared: a document timestamp is validation data, a signature or
    // a new empty field is not.
    void newSignature(QPDFObjectHandle v, const std::string& name) {
        if (isDocumentTimestamp(v)) {
            raise(Modification::SignaturesOnly, "document timestamp added", true);
        } else if (v.isDictionary()) {
            raise(Modification::SignaturesOnly, "signature " + name + " added");
        } else {
            raise(Modification::SignaturesOnly, "empty signature field " + name + " added");
        }
    }

    // A field (of the final document) that a /Fields or /Kids array gained.
    void addedField(QPDFObjectHandle f, int depth, std::set<Og>& seen) {
        if (!f.isDictionary()) {
            if (!f.isNull()) {
                raise(Modification::Other, "a form field list gained a non-field entry");
            }
            return;
        }
        if (depth > kMaxDepth || (f.isIndirect() && !seen.insert(f.getObjGen()).second)) {
            return;
        }
        QPDFObjectHandle kids = f.getKey("/Kids");
        bool hasFieldKids = false;
        if (kids.isArray()) {
            for (auto& k : kids.getArrayAsVector()) {
                if (k.isDictionary() && k.hasKey("/T")) {
                    hasFieldKids = true;
                    addedField(k, depth + 1, seen);
                }
            }
        }
        if (hasFieldKids) {
            return;
        }
        const std::string name = fieldName(f);
        if (inherited(f, "/FT").isNameAndEquals("/Sig")) {
            newSignature(f.getKey("/V"), name);
        } else {
            raise(Modification::Other, "form field " + name + " added");
        }
    }

    void compareFieldLists(QPDFObjectHandle o, QPDFObjectHandle n, const std::string& parent) {
        auto before = itemsOf(o);
        auto after = itemsOf(n);
        std::set<Og> seen;
        for (auto& [id, f] : after) {
            if (!before.count(id)) {
                addedField(f, 0, seen);
            }
        }
        for (auto& [id, f] : before) {
            if (!after.count(id)) {
                raise(Modification::Other, "form field " + fieldName(f) + " removed" +
                                               (parent.empty() ? "" : " from " + parent));
            }
        }
    }

    void compareAcroForm(QPDFObjectHandle o, QPDFObjectHandle n) {
        for (const auto& key : changedKeys(o, n)) {
            if (key == "/Fields") {
                compareFieldLists(keyOf(o, "/Fields"), keyOf(n, "/Fields"), "");
            } else if (key == "/SigFlags") {
                raise(Modification::SignaturesOnly, "", true);
            } else if (key == "/DR" || key == "/DA" || key == "/NeedAppearances") {
                raise(Modification::SignaturesOnly, "the form's defaults changed");
            } else if (key == "(type)") {
                // A form where there was none is judged by its keys; one that went away is not.
                if (!n.isDictionary()) {
                    raise(Modification::Other, "the form (AcroForm) was removed");
                }
            } else {
                raise(Modification::Other, "the form's " + key + " changed");
            }
        }
    }

    bool isSignatureWidget(QPDFObjectHandle a) {
        return keyOf(a, "/Subtype").isNameAndEquals("/Widget") &&
               inherited(ownedWidget(a), "/FT").isNameAndEquals("/Sig");
    }

    // A widget as a field: itself when it names its field (/FT or /Parent), else the field of
    // the final form whose /Kids lists it (writers that omit the widget's /Parent).
    QPDFObjectHandle ownedWidget(QPDFObjectHandle a) {
        if (!a.isIndirect() || !keyOf(a, "/FT").isNull() || !keyOf(a, "/Parent").isNull()) {
            return a;
        }
        QPDFObjectHandle form = keyOf(m_new.getTrailer().getKey("/Root"), "/AcroForm");
        std::vector<QPDFObjectHandle> todo;
        for (auto& [id, f] : itemsOf(keyOf(form, "/Fields"))) {
            todo.push_back(f);
        }
        std::set<Og> seen;
        for (std::size_t i = 0; i < todo.size() && i < 100000; ++i) {
            QPDFObjectHandle f = todo[i];
            if (!f.isDictionary() || (f.isIndirect() && !seen.insert(f.getObjGen()).second)) {
                continue;
            }
            for (auto& [id, kid] : itemsOf(keyOf(f, "/Kids"))) {
                if (kid.isIndirect() && kid.getObjGen() == a.getObjGen()) {
                    return f;
                }
                todo.push_back(kid);
            }
        }
        return a;
    }

    void compareAnnotLists(QPDFObjectHandle o, QPDFObjectHandle n, int page) {
        const std::string p = "page " + std::to_string(page);
        auto before = itemsOf(o);
        auto after = itemsOf(n);
        for (auto& [id, a] : after) {
            if (before.count(id)) {
                continue;
            }
            if (!a.isDictionary()) {
                raise(Modification::Other, p + ": a non-annotation was added to /Annots");
            } else if (isSignatureWidget(a)) {
                newSignature(inherited(ownedWidget(a), "/V"), fieldName(ownedWidget(a)));
            } else if (keyOf(a, "/Subtype").isNameAndEquals("/Widget")) {
                raise(Modification::Other, "form field " + fieldName(a) + " added on " + p);
            } else {
                raise(Modification::Annotations, "annotation added on " + p);
            }
        }
        for (auto& [id, a] : before) {
            if (after.count(id)) {
                continue;
            }
            if (isSignatureWidget(a)) {
                raise(Modification::Other,
                      "the widget of signature field " + fieldName(a) + " was removed from " + p);
            } else {
                raise(Modification::Annotations, "annotation removed from " + p);
            }
        }
    }

    // The catalog by keys: the final /Root may be another object.
    void compareCatalog() {
        QPDFObjectHandle o = oldRoot();
        QPDFObjectHandle n = newRoot();
        for (const auto& key : changedKeys(o, n)) {
            if (key == "/AcroForm") {
                compareAcroForm(keyOf(o, key), keyOf(n, key));
            } else if (key == "/DSS") {
                raise(Modification::SignaturesOnly, "validation data (DSS) added or updated", true);
            } else if (key == "/Extensions" || key == "/Version") {
                // Declared with a DSS (ESIC extension); what the version says changes no content.
                raise(Modification::SignaturesOnly, "", true);
            } else if (key == "/Metadata") {
                raise(Modification::SignaturesOnly, "XMP metadata changed");
            } else if (key == "/Pages") {
                raise(Modification::Other, "the page tree was replaced");
            } else if (key == "(type)") {
                raise(Modification::Other, "the document catalog was replaced");
            } else {
                raise(Modification::Other, "the document catalog's " + key + " changed");
            }
        }
    }

    void compareTrailer() {
        QPDFObjectHandle o = m_old.getTrailer();
        QPDFObjectHandle n = m_new.getTrailer();
        if (keyOf(o, "/Info").unparse() != keyOf(n, "/Info").unparse()) {
            raise(Modification::SignaturesOnly, "document information changed");
        }
        if (keyOf(o, "/Encrypt").unparse() != keyOf(n, "/Encrypt").unparse()) {
            raise(Modification::Other, "the encryption dictionary changed");
        }
    }

    // An object stream or a cross-reference stream, in both revisions: the objects an object
    // stream holds are compared one by one, and cross-reference streams are read by qpdf, never
    // shown.
    bool isContainer(const Og& og) {
        try {
            if (!m_newX.count(og)) {
                return false;
            }
            QPDFObjectHandle o = m_old.getObjectByObjGen(og);
            QPDFObjectHandle n = m_new.getObjectByObjGen(og);
            for (const char* type : {"/ObjStm", "/XRef"}) {
                if (o.isStream() && n.isStream() && keyOf(o, "/Type").isNameAndEquals(type) &&
                    keyOf(n, "/Type").isNameAndEquals(type)) {
                    return true;
                }
            }
        } catch (const std::exception&) {
        }
        return false;
    }

    void classify(const Og& og) {
        auto it = m_roles.find(og);
        if (it == m_roles.end()) {
            if (isContainer(og)) {
                return;
            }
            if (!m_newX.count(og)) {
                ++m_deleted;
            }
            m_otherObjects.push_back(og.unparse(' '));
            raise(Modification::Other, "");
            return;
        }
        QPDFObjectHandle o;
        QPDFObjectHandle n;
        try {
            o = m_old.getObjectByObjGen(og);
            n = m_newX.count(og) ? m_new.getObjectByObjGen(og) : QPDFObjectHandle::newNull();
        } catch (const std::exception&) {
            raise(Modification::Other, "object " + og.unparse(' ') + " cannot be read");
            return;
        }
        for (const Role& r : it->second) {
            apply(r, o, n);
        }
    }

    void apply(const Role& r, QPDFObjectHandle o, QPDFObjectHandle n) {
        const std::string p = "page " + std::to_string(r.page);
        switch (r.kind) {
            case Kind::Catalog:
                return;  // compared by keys in compareCatalog()
            case Kind::Info:
                return raise(Modification::SignaturesOnly, "document information changed");
            case Kind::Metadata:
                return raise(Modification::SignaturesOnly, "XMP metadata changed");
            case Kind::AcroForm:
                return compareAcroForm(o, n);
            case Kind::FormResources:
                return raise(Modification::SignaturesOnly, "the form's defaults changed");
            case Kind::FieldList:
                return compareFieldLists(o, n, r.name);
            case Kind::FieldNode:
                for (const auto& key : changedKeys(o, n)) {
                    if (key == "/Kids") {
                        compareFieldLists(keyOf(o, key), keyOf(n, key), r.name);
                    } else {
                        raise(Modification::Other,
                              "form field " + r.name + " changed (" + key + ")");
                    }
                }
                return;
            case Kind::SignedField:
                return raise(Modification::Other,
                             "signature field " + r.name + " changed after it was signed");
            case Kind::EmptySignatureField:
                if (r.part != Part::Dict) {
                    return raise(Modification::SignaturesOnly,
                                 "appearance of signature field " + r.name + " changed");
                }
                for (const auto& key : changedKeys(o, n)) {
                    static const std::set<std::string> allowed = {"/AP", "/AS",   "/F", "/MK",
                                                                  "/DA", "/Lock", "/SV"};
                    if (key == "/V") {
                        newSignature(keyOf(n, "/V"), r.name);
                    } else if (allowed.count(key)) {
                        raise(Modification::SignaturesOnly, "");
                    } else {
                        raise(Modification::Other,
                              "empty signature field " + r.name + " changed (" + key + ")");
                    }
                }
                return;
            case Kind::FormField:
                if (r.part != Part::Dict) {
                    return raise(Modification::FormFilling, "form field " + r.name + " filled");
                }
                for (const auto& key : changedKeys(o, n)) {
                    static const std::set<std::string> allowed = {"/V", "/AP", "/AS", "/I", "/DV"};
                    if (allowed.count(key)) {
                        raise(Modification::FormFilling, "form field " + r.name + " filled");
                    } else {
                        raise(Modification::Other,
                              "form field " + r.name + " changed (" + key + ")");
                    }
                }
                return;
            case Kind::PageTree:
                for (const auto& key : changedKeys(o, n)) {
                    if (key == "/ITXT") {
                        // iText's version stamp on the page tree root: no page changes.
                        raise(Modification::SignaturesOnly, "", true);
                    } else {
                        raise(Modification::Other, "a page was added, removed or moved");
                    }
                }
                return;
            case Kind::Content:
                return raise(Modification::Other, r.name);
            case Kind::Page:
                if (!n.isDictionary()) {
                    return raise(Modification::Other, p + " was removed");
                }
                for (const auto& key : changedKeys(o, n)) {
                    if (key == "/Annots") {
                        compareAnnotLists(keyOf(o, key), keyOf(n, key), r.page);
                    } else if (key == "/Contents") {
                        raise(Modification::Other, p + ": content changed");
                    } else if (key == "/Resources") {
                        raise(Modification::Other, p + ": resources changed");
                    } else {
                        raise(Modification::Other, p + ": " + key + " changed");
                    }
                }
                return;
            case Kind::AnnotsArray:
                return compareAnnotLists(o, n, r.page);
            case Kind::Annotation:
                return raise(Modification::Annotations, "annotation changed on " + p);
            case Kind::Dss:
                return raise(Modification::SignaturesOnly, "validation data (DSS) added or updated",
                             true);
        }
    }

    QPDF& m_old;
    QPDF& m_new;
    ModificationReport& m_report;
    XRef m_oldX;
    XRef m_newX;
    std::set<Og> m_changed;  // objects of the signed revision that changed or were deleted
    std::map<Og, std::vector<Role>> m_roles;
    std::set<Og> m_fieldWidgets;              // widgets of the form's fields in the signed revision
    std::set<Og> m_contentSeen;               // content objects already visited
    std::vector<std::string> m_otherObjects;  // changed objects that have no role
    int m_deleted = 0;                        // ... of which deleted
};

}  // namespace

namespace {

// The object numbers whose cross-reference entries differ between two views of a document,
// among the objects both views have.
std::set<Og> disagreements(const XRef& a, const XRef& b) {
    std::set<Og> out;
    for (const auto& [og, entry] : a) {
        const auto it = b.find(og);
        if (it != b.end() && !sameEntry(entry, it->second)) {
            out.insert(og);
        }
    }
    return out;
}

// Processes bytes as a reader that ignores /XRefStm (a PDF 1.4 reader of a hybrid file) would.
void openIgnoringXRefStm(QPDF& doc, const char* description, const char* data, std::size_t size) {
    doc.setSuppressWarnings(true);
    doc.setIgnoreXRefStreams(true);
    doc.processMemoryFile(description, data, size);
}

// Hybrid-reference files (ISO 32000-1, 7.5.8.4): a reader that follows /XRefStm and one that
// ignores it may resolve an object differently (pyHanko's "hybrid sneaky edit": a later trailer's
// /XRefStm moves an object of the signed revision, unseen by the other kind of reader). The
// revisions are compared once more as a reader that ignores /XRefStm sees them, the worse verdict
// stands, and any object that the two kinds of reader now resolve differently (and did not in the
// signed revision) is a modification.
void compareAsLegacyReader(const MappedFile& whole, const MappedFile& signedBytes, QPDF& finalDoc,
                           QPDF& signedDoc, ModificationReport& report) {
    QPDF legacyFinal;
    QPDF legacySigned;
    try {
        openIgnoringXRefStm(legacyFinal, "document", whole.data(), whole.size());
        openIgnoringXRefStm(legacySigned, "signed revision", signedBytes.data(),
                            signedBytes.size());
    } catch (const std::exception& e) {
        report.level = Modification::Other;
        report.validationDataOnly = false;
        report.notes.push_back(
            std::string("a reader that ignores /XRefStm cannot read the document: ") + e.what());
        return;
    }
    const std::set<Og> before =
        disagreements(signedDoc.getXRefTable(), legacySigned.getXRefTable());
    std::string listed;
    int count = 0;
    for (const Og& og : disagreements(finalDoc.getXRefTable(), legacyFinal.getXRefTable())) {
        if (before.count(og) == 0) {
            if (count++ < static_cast<int>(kListedObjects)) {
                listed += (listed.empty() ? "" : ", ") + og.unparse(' ');
            }
        }
    }
    if (count > 0) {
        report.level = Modification::Other;
        report.validationDataOnly = false;
        report.notes.push_back(
            "readers that follow /XRefStm and readers that ignore it see different objects (" +
            listed + (count > static_cast<int>(kListedObjects) ? ", ..." : "") +
            "): a hybrid-reference update that shows each kind of reader other content");
    }
    ModificationReport legacy;
    Analyzer(legacySigned, legacyFinal, legacy).run();
    if (legacy.level > report.level) {
        report.level = legacy.level;
    }
    report.validationDataOnly = report.validationDataOnly && legacy.validationDataOnly;
    report.incomplete = report.incomplete || legacy.incomplete;
    for (const auto& n : legacy.notes) {
        const std::string note = "as a reader that ignores /XRefStm sees it: " + n;
        if (std::find(report.notes.begin(), report.notes.end(), n) == report.notes.end() &&
            std::find(report.notes.begin(), report.notes.end(), note) == report.notes.end()) {
            report.notes.push_back(note);
        }
    }
}

bool mentionsXRefStm(const MappedFile& f) {
    static const char kKey[] = "/XRefStm";
    return f.data() != nullptr && ::memmem(f.data(), f.size(), kKey, sizeof kKey - 1) != nullptr;
}

}  // namespace

ModificationReport classifyModifications(QPDF& finalDoc, const std::string& path,
                                         long long signedEnd) {
    ModificationReport report;
    auto fail = [&report](const std::string& note) {
        report.level = Modification::Other;
        report.validationDataOnly = false;
        report.incomplete = true;
        report.notes.push_back(note);
    };
    try {
        const MappedFile bytes(path, signedEnd);
        if (bytes.data() == nullptr) {
            fail("the signed revision cannot be read from the file");
            return report;
        }
        QPDF signedDoc;
        signedDoc.setSuppressWarnings(true);
        try {
            signedDoc.processMemoryFile("signed revision", bytes.data(), bytes.size());
        } catch (const std::exception& e) {
            fail(std::string("the signed revision cannot be read: ") + e.what());
            return report;
        }
        for (const auto& w : signedDoc.getWarnings()) {
            if (w.getMessageDetail().find("reconstruct") != std::string::npos) {
                report.notes.push_back(
                    "the signed revision's cross-reference table is damaged and was rebuilt");
                break;
            }
        }
        Analyzer(signedDoc, finalDoc, report).run();
        const MappedFile whole(path);
        if (mentionsXRefStm(whole)) {
            compareAsLegacyReader(whole, bytes, finalDoc, signedDoc, report);
        }
    } catch (const std::exception& e) {
        fail(std::string("the modifications could not be analysed: ") + e.what());
    } catch (...) {
        fail("the modifications could not be analysed");
    }
    return report;
}

}  // namespace kyso::signer
