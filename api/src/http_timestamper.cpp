#include "kyso/api/http_timestamper.h"

#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>

#include <fstream>
#include <sstream>

#include "kyso/ca-bridge/issuer.h"

namespace kyso::api {

namespace {

constexpr std::size_t kMaxReply = 64 * 1024;

class HttpTimestamper final : public signer::Timestamper {
  public:
    explicit HttpTimestamper(HttpTsaConfig cfg)
        : Timestamper(cfg.trustAnchors, cfg.reserveBytes), m_cfg(std::move(cfg)), m_uri(m_cfg.url) {
        if (m_uri.getScheme() == "https") {
            Poco::Net::Context::Params p;
            p.verificationMode = Poco::Net::Context::VERIFY_STRICT;
            p.caLocation = m_cfg.tlsCaFile;
            p.loadDefaultCAs = m_cfg.tlsCaFile.empty();
            m_tls = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, p);
            m_tls->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
        }
    }

  protected:
    Result<std::string> exchange(const std::string& request) override {
        try {
            std::unique_ptr<Poco::Net::HTTPClientSession> session;
            if (m_tls) {
                session = std::make_unique<Poco::Net::HTTPSClientSession>(m_uri.getHost(),
                                                                          m_uri.getPort(), m_tls);
            } else {
                session = std::make_unique<Poco::Net::HTTPClientSession>(m_uri.getHost(),
                                                                         m_uri.getPort());
            }
            session->setTimeout(Poco::Timespan(m_cfg.timeoutSeconds, 0));
            Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_POST, m_uri.getPathAndQuery(),
                                       Poco::Net::HTTPMessage::HTTP_1_1);
            req.setContentType("application/timestamp-query");
            req.setContentLength64(static_cast<Poco::Int64>(request.size()));
            session->sendRequest(req) << request;
            Poco::Net::HTTPResponse resp;
            std::istream& in = session->receiveResponse(resp);
            if (resp.getStatus() != Poco::Net::HTTPResponse::HTTP_OK) {
                return Error::make("tsa.unavailable",
                                   "the TSA answered HTTP " + std::to_string(resp.getStatus()));
            }
            if (resp.getContentType().rfind("application/timestamp-reply", 0) != 0) {
                return Error::make("tsa.invalid_reply", "the TSA answered " +
                                                            resp.getContentType() +
                                                            ", not application/timestamp-reply");
            }
            std::string body;
            std::vector<char> buf(4096);
            while (in && body.size() <= kMaxReply) {
                in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
                body.append(buf.data(), static_cast<std::size_t>(in.gcount()));
            }
            if (body.size() > kMaxReply) {
                return Error::make("tsa.invalid_reply", "the TSA's reply is too large");
            }
            return body;
        } catch (const Poco::Exception& e) {
            return Error::make("tsa.unavailable", "cannot reach the TSA: " + e.displayText());
        }
    }

  private:
    HttpTsaConfig m_cfg;
    Poco::URI m_uri;
    Poco::Net::Context::Ptr m_tls;
};

}  // namespace

Result<std::unique_ptr<signer::Timestamper>> makeHttpTimestamper(HttpTsaConfig config) {
    try {
        Poco::URI uri(config.url);
        if ((uri.getScheme() != "http" && uri.getScheme() != "https") || uri.getHost().empty()) {
            return Error::make("config.invalid", "the TSA URL must be http:// or https://");
        }
        if (config.trustAnchors.empty()) {
            return Error::make("config.invalid", "the TSA client needs trust anchors");
        }
        return std::unique_ptr<signer::Timestamper>(new HttpTimestamper(std::move(config)));
    } catch (const Poco::Exception& e) {
        return Error::make("config.invalid", "bad TSA URL: " + e.displayText());
    }
}

Result<std::unique_ptr<signer::Timestamper>> makeHttpTimestamperFrom(const TimestampingConfig& t) {
    std::ifstream in(t.trustAnchors, std::ios::binary);
    std::stringstream pem;
    pem << in.rdbuf();
    auto anchors = ca::certificatesFromPem(pem.str());
    if (!anchors) {
        return Error::make("config.invalid",
                           "[timestamping] trustAnchors: no certificate in " + t.trustAnchors);
    }
    return makeHttpTimestamper(
        HttpTsaConfig{t.url, *anchors, t.tlsCaFile, t.timeoutSeconds, t.reserveBytes});
}

}  // namespace kyso::api
