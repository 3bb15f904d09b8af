# Set-up, demo and tests: every target installs what it needs into .venv first.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
# A CPU build of torch unless this machine has an NVIDIA GPU: no multi-GB CUDA download
# on machines that cannot use it. Override with `make TORCH=...`.
HAS_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
TORCH   ?= $(if $(HAS_GPU),torch==2.13.0,torch==2.13.0+cpu)
# torchvision (the CNN module's backbones) only beside a CUDA torch: the index's builds
# link torch's CUDA libraries, so they cannot load beside a CPU build.
TORCHVISION ?= $(if $(HAS_GPU),torchvision==0.28.0)

# A run on one machine keeps Ray's traffic on loopback (Ray's single-machine mode).
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER ?= 0

.PHONY: setup debian-packages demo test bench bench-models bench-quality bench-gmm bench-messages bench-memory bench-scale bench-scale-vae bench-data-parallel bench-serket bench-modules bench-naming naming-game lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)" $(TORCHVISION)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: setup  ## the tutorial on the embedded digits, embedded local Ray
	$(BIN)/serket-ray tutorial --out runs/tutorial --overwrite

test: setup debian-packages  ## the whole test suite
	$(BIN)/python -m pytest -q

# The report test opens the page in a real headless browser (Chromium and its driver);
# the HAC tests speak digits with espeak-ng. Debian's packages (as root; elsewhere
# install them yourself first).
debian-packages:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
	  && command -v espeak-ng >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium chromium-driver espeak-ng >/dev/null; }

bench: setup  ## tutorial settings: Ray actors vs one process (BENCH_FLAGS="--repeats 2")
	$(BIN)/serket-ray bench $(BENCH_FLAGS)

bench-models: setup  ## accuracy of the shipped graph files over seeds (MODEL_FLAGS="--seeds 0 1 2")
	$(BIN)/serket-ray bench-models $(MODEL_FLAGS)

bench-serket: setup  ## Serket's scripts, imports changed only: each module's accuracy
	$(BIN)/serket-ray bench-serket $(SERKET_FLAGS)

bench-modules: setup  ## Serket's HAC+LDA and VAE+GMM+NN examples, per seed (MODULES_FLAGS=...)
	$(BIN)/serket-ray bench-modules $(MODULES_FLAGS)

bench-naming: setup  ## the naming game per mode over 3 seeds: final ARI per agent, kappa (NAMING_FLAGS=...)
	$(BIN)/serket-ray bench-naming $(NAMING_FLAGS)

naming-game: setup  ## two agents (the second sees the digits at 45 degrees) play the MH naming game
	$(BIN)/serket-ray naming-game --out runs/naming-game --overwrite $(NAMING_FLAGS)

bench-quality: setup  ## accuracy over 5 seeds: coupled/uncoupled x jitter, PCA+GMM, recognition
	$(BIN)/serket-ray bench-quality $(QUALITY_FLAGS)

bench-gmm: setup  ## one GMM update by number of elements, synthetic latents (GMM_FLAGS=...)
	$(BIN)/serket-ray bench-gmm $(GMM_FLAGS)

bench-messages: setup  ## message cost by payload size, one node vs two simulated nodes
	$(BIN)/serket-ray bench-messages

bench-memory: setup  ## peak memory per process, VAE on the digits tiled 50 times (MEMORY_FLAGS=...)
	$(BIN)/serket-ray bench-memory $(MEMORY_FLAGS)

bench-scale: setup  ## sharded PCA -> GMM at 100k and 1M deformed digits, S = 1, 2 (SCALE_FLAGS=...)
	$(BIN)/serket-ray bench-scale $(SCALE_FLAGS)

bench-scale-vae: setup  ## the data-parallel VAE at 100k and 1M deformed digits, S = 1, 2
	$(BIN)/serket-ray bench-scale --model vae $(SCALE_FLAGS)

bench-data-parallel: setup  ## the tutorial with the VAE over 1 and 2 shards, 3 seeds: accuracy
	$(BIN)/serket-ray bench-data-parallel $(PARALLEL_FLAGS)

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) runs serket_output .pytest_cache
