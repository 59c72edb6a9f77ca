#include "kyso/api/http_fetch.h"

#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/URI.h>

#include <memory>

namespace kyso::api {

ca::Fetch makeHttpFetch(std::string tlsCaFile, int timeoutSeconds, std::size_t maxBytes) {
    Poco::Net::Context::Params p;
    p.verificationMode = Poco::Net::Context::VERIFY_STRICT;
    p.caLocation = tlsCaFile;
    p.loadDefaultCAs = tlsCaFile.empty();
    Poco::Net::Context::Ptr tls = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, p);
    tls->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
    return [tls, timeoutSeconds, maxBytes](const std::string& url, const std::string& body,
                                           const std::string& contentType) -> Result<std::string> {
        try {
            Poco::URI uri(url);
            std::unique_ptr<Poco::Net::HTTPClientSession> s;
            if (uri.getScheme() == "https") {
                s = std::make_unique<Poco::Net::HTTPSClientSession>(uri.getHost(), uri.getPort(),
                                                                    tls);
            } else if (uri.getScheme() == "http") {
                s = std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
            } else {
                return Error::make("fetch.unsupported", "only http and https URLs are fetched");
            }
            s->setTimeout(Poco::Timespan(timeoutSeconds, 0));
            Poco::Net::HTTPRequest req(
                body.empty() ? Poco::Net::HTTPRequest::HTTP_GET : Poco::Net::HTTPRequest::HTTP_POST,
                uri.getPathAndQuery(), Poco::Net::HTTPMessage::HTTP_1_1);
            if (!body.empty()) {
                req.setContentType(contentType);
                req.setContentLength64(static_cast<Poco::Int64>(body.size()));
            }
            s->sendRequest(req) << body;
            Poco::Net::HTTPResponse resp;
            std::istream& in = s->receiveResponse(resp);
            if (resp.getStatus() != Poco::Net::HTTPResponse::HTTP_OK) {
                return Error::make("fetch.failed", "HTTP " + std::to_string(resp.getStatus()));
            }
            std::string out;
            std::vector<char> buf(16384);
            while (in && out.size() <= maxBytes) {
                in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
                out.append(buf.data(), static_cast<std::size_t>(in.gcount()));
            }
            if (out.size() > maxBytes) {
                return Error::make("fetch.too_large", "the answer is too large");
            }
            return out;
        } catch (const Poco::Exception& e) {
            return Error::make("fetch.failed", e.displayText());
        }
    };
}

}  // namespace kyso::api
