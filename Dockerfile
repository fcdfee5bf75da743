# syntax=docker/dockerfile:1
# The mtls-webhook image: `serve` (the admission webhook) by default, `render`
# when given it as the first argument. The build context is the repository root:
#   docker build --build-arg VERSION=0.1.0 -t ghcr.io/mtls-demo/mtls-webhook:0.1.0 .
# `make images` builds it with the tag the Helm chart expects; `make test`
# (hack/check-dockerfile.sh) builds the same `go build` line against the files
# the COPY lines below bring in, so a wrong package or a missing COPY fails there.

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so that source edits do not invalidate the module cache layer.
COPY go.mod go.sum ./
RUN go mod download
# Only the packages the binary imports (cmd -> internal -> pkg).
COPY cmd/ cmd/
COPY internal/ internal/
COPY pkg/ pkg/
# Static (no libc in the runtime image), reproducible paths, no debug symbols.
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/mtls-webhook ./cmd/webhook

# Distroless static, non-root (uid 65532, as in the chart's securityContext):
# no shell and no package manager in the running image.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="mtls-webhook" \
      org.opencontainers.image.description="Mutating admission webhook injecting cert-manager csi-driver mTLS volumes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/mtls-demo/mtls-webhook"
COPY --from=build /out/mtls-webhook /mtls-webhook
USER 65532:65532
# 10250 admission HTTPS, 8081 /healthz and /readyz, 8080 metrics (chart defaults).
EXPOSE 10250 8081 8080
ENTRYPOINT ["/mtls-webhook"]
CMD ["serve"]
