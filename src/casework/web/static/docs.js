// /docs: Swagger UI on this server's OpenAPI document, from the package's own copy (no CDN, no inline script).
(function () {
  "use strict";
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapi,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null, // the default sends the document to an outside validator
    persistAuthorization: true,
  });
})();
