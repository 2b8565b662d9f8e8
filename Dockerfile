FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY alongside alongside
COPY contracts contracts
COPY runtime runtime
COPY services services
COPY rules rules
RUN pip install --no-cache-dir .
ENV ALONGSIDE_LOG_JSON=true
ENV ALONGSIDE_RULES_DIR=/app/rules
ENTRYPOINT ["alongside"]
