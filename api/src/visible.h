// Visible signatures for the service and the CLI: a credential's configured appearance
// ([appearance.ID]), its certificate's names, and what one request asks for, made into the
// signer's Appearance.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "kyso/api/config.h"
#include "kyso/hsm/credential.h"
#include "kyso/signer/appearance.h"

namespace kyso::api {

// What a request says about its visible signature (query parameters or CLI options).
struct VisibleRequest {
    std::optional<signer::PdfRect> rect;  // rect=x,y,w,h
    std::optional<int> page;              // page=N
    // Overrides of the configured appearance, each allowed or not by the policy's [appearance].
    std::optional<signer::AppearanceLayout> layout;  // layout=image-left|...
    std::optional<std::string> text;                 // text=line|line (placeholders allowed)
    std::optional<double> fontSize;                  // fontSize=N (4..72)
    std::optional<bool> image;                       // image=false: no image
    std::string reason;
    std::string location;
};

// Reads rect, page, layout, text, fontSize, image, reason and location from PARAMS (absent keys
// are not overrides). Errors: request.invalid naming the parameter.
Result<VisibleRequest> visibleRequestOf(const std::map<std::string, std::string>& params);

// The names of the settings REQUEST overrides: "layout", "text", "fontSize", "image".
std::set<std::string> overridesOf(const VisibleRequest& request);

// The appearance of CREDENTIAL's signature made at WHEN: its [appearance.ID] (or the defaults
// of docs/CONFIGURATION.md), the names in its certificate where the configuration gives none,
// and REQUEST's rectangle and overrides. A seal credential gets the seal layout. The page is
// REQUEST's, else the configuration's, else 1 (in *page).
signer::Appearance appearanceFor(const Config& config, const hsm::Credential& credential,
                                 const VisibleRequest& request,
                                 std::chrono::system_clock::time_point when, int* page);

// "hh:mm:ss dd/mm/yyyy" and "yyyy-mm-ddThh:mm:ss+07:00", in Vietnam time (UTC+07:00).
std::string vietnamTime(std::chrono::system_clock::time_point t);
std::string vietnamIsoTime(std::chrono::system_clock::time_point t);

}  // namespace kyso::api
