#include "report_json.h"

#include <Poco/JSON/Array.h>

namespace kyso::api {

namespace {

Poco::Dynamic::Var timeOrNull(std::time_t t) {
    return t != 0 ? Poco::Dynamic::Var(isoUtc(t)) : Poco::Dynamic::Var();
}

Poco::Dynamic::Var stringOrNull(const std::string& s) {
    return s.empty() ? Poco::Dynamic::Var() : Poco::Dynamic::Var(s);
}

Poco::JSON::Array strings(const std::vector<std::string>& v) {
    Poco::JSON::Array a;
    for (const auto& s : v) {
        a.add(s);
    }
    return a;
}

}  // namespace

std::string isoUtc(std::time_t t) {
    struct tm tm {};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

Poco::JSON::Object::Ptr reportJson(const policies::ValidationReport& report) {
    Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    o->set("validationTime", isoUtc(report.validationTime));
    o->set("policy", report.policy);
    o->set("indication", report.indication);
    o->set("signaturesCount", static_cast<int>(report.signatures.size()));
    o->set("validSignaturesCount", report.validSignaturesCount());
    Poco::JSON::Array sigs;
    for (const auto& s : report.signatures) {
        Poco::JSON::Object j(Poco::JSON_PRESERVE_KEY_ORDER);
        j.set("id", s.id);
        j.set("format", s.format);
        j.set("fieldName", stringOrNull(s.fieldName));
        j.set("signedBy", stringOrNull(s.signedBy));
        j.set("subjectDN", stringOrNull(s.subjectDN));
        j.set("claimedSigningTime", timeOrNull(s.claimedSigningTime));
        j.set("bestSignatureTime", timeOrNull(s.bestSignatureTime));
        j.set("indication", s.indication);
        j.set("subIndication", stringOrNull(s.subIndication));
        j.set("coverage", stringOrNull(s.coverage));
        j.set("modificationsAfterSigning", stringOrNull(s.modificationsAfterSigning));
        Poco::JSON::Array chain;
        for (const auto& c : s.certificateChain) {
            Poco::JSON::Object cj(Poco::JSON_PRESERVE_KEY_ORDER);
            cj.set("subjectDN", c.subjectDN);
            cj.set("issuerDN", c.issuerDN);
            cj.set("serialNumber", c.serialNumber);
            cj.set("notBefore", timeOrNull(c.notBefore));
            cj.set("notAfter", timeOrNull(c.notAfter));
            cj.set("trusted", c.trusted);
            chain.add(cj);
        }
        j.set("certificateChain", chain);
        if (s.revocationChecked) {
            Poco::JSON::Object r(Poco::JSON_PRESERVE_KEY_ORDER);
            r.set("status", s.revocation.status);
            r.set("source", stringOrNull(s.revocation.source));
            r.set("thisUpdate", timeOrNull(s.revocation.thisUpdate));
            r.set("revocationTime", timeOrNull(s.revocation.revocationTime));
            r.set("origin", stringOrNull(s.revocation.origin));
            j.set("revocation", r);
        } else {
            j.set("revocation", Poco::Dynamic::Var());
        }
        Poco::JSON::Array tss;
        for (const auto& t : s.timestamps) {
            Poco::JSON::Object tj(Poco::JSON_PRESERVE_KEY_ORDER);
            tj.set("type", t.type);
            tj.set("genTime", timeOrNull(t.genTime));
            tj.set("tsa", stringOrNull(t.tsa));
            tj.set("indication", t.indication);
            tj.set("subIndication", stringOrNull(t.subIndication));
            tss.add(tj);
        }
        j.set("timestamps", tss);
        Poco::JSON::Array vd;
        for (const auto& u : s.validationData) {
            Poco::JSON::Object uj(Poco::JSON_PRESERVE_KEY_ORDER);
            uj.set("certificate", u.certificate);
            uj.set("usedFor", u.usedFor);
            uj.set("status", u.status);
            uj.set("source", stringOrNull(u.source));
            uj.set("origin", stringOrNull(u.origin));
            uj.set("thisUpdate", timeOrNull(u.thisUpdate));
            vd.add(uj);
        }
        j.set("validationData", vd);
        j.set("errors", strings(s.errors));
        j.set("warnings", strings(s.warnings));
        sigs.add(j);
    }
    o->set("signatures", sigs);
    return o;
}

int verifyExitCode(const policies::ValidationReport& report) {
    if (report.indication == "TOTAL_PASSED") {
        return 0;
    }
    return report.indication == "TOTAL_FAILED" ? 1 : 2;
}

}  // namespace kyso::api
