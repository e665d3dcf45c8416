// Image decoding and encoding behind the C ABI: JPEG through libjpeg-turbo, PNG through libpng.
//
// Deliberately free of ATen (plain C++ over the two C libraries) so that it compiles fast. Both libraries report
// errors by longjmp, so every function that calls setjmp keeps all of its state in a job struct owned by its caller
// and holds no object with a destructor; the exported wrappers turn a failure into a negative status code plus the
// per-thread last-error message (mr::set_last_error), and no C++ exception ever leaves this file.
//
// Decoding follows torchvision.io.decode_image (0.14) wherever that is defined and sensible:
//  * JPEG: libjpeg's own colour conversions (same calls as torchvision, so identical pixels). CMYK/YCCK files are
//    returned as their 4 stored (Adobe-inverted) channels in "unchanged" mode, like torchvision; the gray and RGB
//    modes convert them the way Pillow does (torchvision 0.14 rejects those modes for CMYK). Alpha modes add an
//    opaque channel (torchvision 0.14 rejects them for JPEG). A premature end of data is an error.
//  * PNG: palettes are expanded (to RGBA when a tRNS chunk is present), 1/2/4-bit gray is scaled to 8 bits, 16-bit
//    samples keep their high byte (torchvision 0.14 rejects 16-bit PNGs), interlaced images are supported, and the
//    alpha modes turn a gray/RGB tRNS colour key into alpha. RGB-to-gray uses libpng with torchvision's weights.
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#define MR_API extern "C" __attribute__((visibility("default")))

namespace mr {
void set_last_error(const char* message);  // defined in core.cpp
}

namespace {

// ---- shared definitions --------------------------------------------------------------------------------------

// Status codes (mirrored by ImageNativeMethods.cs).
enum Status : int {
  kOk = 0,
  kCorrupt = -1,
  kTruncated = -2,
  kUnsupported = -3,
  kTooLarge = -4,
  kBadArgument = -5,
  kNoMemory = -6,
};

enum Format : int { kFormatUnknown = 0, kFormatJpeg = 1, kFormatPng = 2 };

// Same values as torchvision.io.ImageReadMode.
enum Mode : int { kUnchanged = 0, kGray = 1, kGrayAlpha = 2, kRgb = 3, kRgbAlpha = 4 };

constexpr uint64_t kMaxPixels = uint64_t{1} << 31;
constexpr size_t kMessageSize = 512;

// Where decoded pixels go: HWC (interleaved) or CHW (planar) in a caller-provided buffer; no buffer = header only.
struct Target {
  uint8_t* dst;
  int64_t dst_size;
  int planar;
  int64_t height;
  int64_t width;
  int channels;
};

// Stores one interleaved row (width * channels bytes) at row y of the target.
void emit_row(const Target* t, int64_t y, const uint8_t* row) {
  const int64_t w = t->width;
  const int c = t->channels;
  if (!t->planar || c == 1) {
    std::memcpy(t->dst + y * w * c, row, static_cast<size_t>(w * c));
    return;
  }
  for (int ch = 0; ch < c; ++ch) {
    uint8_t* plane = t->dst + ch * t->height * w + y * w;
    const uint8_t* src = row + ch;
    for (int64_t x = 0; x < w; ++x) plane[x] = src[x * c];
  }
}

// Returns row y of an image given as HWC or CHW as an interleaved row (in `scratch` when it must be gathered).
const uint8_t* source_row(const uint8_t* pixels, int64_t h, int64_t w, int c, int planar, int64_t y,
                          uint8_t* scratch) {
  if (!planar || c == 1) return pixels + y * w * c;
  for (int ch = 0; ch < c; ++ch) {
    const uint8_t* plane = pixels + ch * h * w + y * w;
    for (int64_t x = 0; x < w; ++x) scratch[x * c + ch] = plane[x];
  }
  return scratch;
}

// Refuses images whose pixel count is absurd for this library (or would overflow the byte count).
int check_dimensions(uint64_t width, uint64_t height, int channels, char* message) {
  if (width == 0 || height == 0) {
    std::snprintf(message, kMessageSize, "the image has no pixels (%llux%llu)", (unsigned long long)width,
                  (unsigned long long)height);
    return kCorrupt;
  }
  if (width > kMaxPixels || height > kMaxPixels || width * height > kMaxPixels) {
    std::snprintf(message, kMessageSize,
                  "the image is %llux%llu pixels, more than the supported maximum of %llu pixels",
                  (unsigned long long)width, (unsigned long long)height, (unsigned long long)kMaxPixels);
    return kTooLarge;
  }
  if (channels < 1 || channels > 4) {
    std::snprintf(message, kMessageSize, "unsupported number of decoded channels: %d", channels);
    return kUnsupported;
  }
  return kOk;
}

bool is_jpeg(const uint8_t* d, size_t n) { return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF; }
bool is_png(const uint8_t* d, size_t n) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  return n >= 8 && std::memcmp(d, sig, 8) == 0;
}

// Pillow's rounding a*b/255.
inline int muldiv255(int a, int b) {
  const int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

// ---- JPEG: errors -------------------------------------------------------------------------------------------

struct JpegError {
  jpeg_error_mgr pub;  // first member: libjpeg sees only this
  jmp_buf jump;
  int status;
  char message[kMessageSize];
};

[[noreturn]] void jpeg_fail(j_common_ptr cinfo, int status) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  char text[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, text);
  std::snprintf(err->message, kMessageSize, "JPEG: %s", text);
  err->status = status;
  std::longjmp(err->jump, 1);
}

int jpeg_status_of(int code) {
  switch (code) {
    case JERR_BAD_PRECISION:
    case JERR_CONVERSION_NOTIMPL:
    case JERR_NOT_COMPILED:
    case JERR_NOTIMPL:
      return kUnsupported;
    case JERR_OUT_OF_MEMORY:
      return kNoMemory;
    case JERR_IMAGE_TOO_BIG:
      return kTooLarge;
    case JERR_INPUT_EMPTY:
    case JERR_INPUT_EOF:
      return kTruncated;
    default:
      return kCorrupt;
  }
}

void jpeg_on_error(j_common_ptr cinfo) { jpeg_fail(cinfo, jpeg_status_of(cinfo->err->msg_code)); }

// Warnings are ignored (libjpeg would print them) except a premature end of data, which libjpeg would otherwise
// paper over by padding the image with gray: the file ending (JWRN_JPEG_EOF), or the entropy-coded data of a scan
// ending at a marker before the image is complete (JWRN_HIT_MARKER, "premature end of data segment": a cut file
// that still ends with EOI, or a header announcing more rows than the data holds).
void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level < 0) {
    if (cinfo->err->msg_code == JWRN_JPEG_EOF || cinfo->err->msg_code == JWRN_HIT_MARKER) jpeg_fail(cinfo, kTruncated);
    cinfo->err->num_warnings++;
  }
}

void jpeg_silent(j_common_ptr) {}

void jpeg_install_errors(JpegError* err) {
  jpeg_std_error(&err->pub);
  err->pub.error_exit = jpeg_on_error;
  err->pub.emit_message = jpeg_on_message;
  err->pub.output_message = jpeg_silent;
  err->status = kOk;
  err->message[0] = '\0';
}

// ---- JPEG: decoding -----------------------------------------------------------------------------------------

enum JpegConversion { kCopy = 0, kCmykToRgb = 1, kCmykToGray = 2 };

struct JpegDecodeJob {
  const uint8_t* data;
  size_t size;
  int mode;
  Target* target;
  jpeg_decompress_struct cinfo;
  JpegError err;
  bool created;
  uint8_t* scan;  // one scanline as libjpeg delivers it
  uint8_t* row;   // one output row, when conversion or an alpha channel is needed
  int conversion;
  bool add_alpha;
};

// Converts one scanline into the output layout. CMYK samples are Adobe-inverted (as Photoshop and Pillow write
// them, and as torchvision and Pillow assume): stored 255 means no ink. Colour formula = Pillow's cmyk2rgb.
const uint8_t* jpeg_convert_row(JpegDecodeJob* job) {
  const int64_t w = job->target->width;
  const int c = job->target->channels;
  if (job->conversion == kCopy && !job->add_alpha) return job->scan;
  const uint8_t* in = job->scan;
  uint8_t* out = job->row;
  const int color = job->add_alpha ? c - 1 : c;
  for (int64_t x = 0; x < w; ++x) {
    uint8_t* px = out + x * c;
    if (job->conversion == kCopy) {
      std::memcpy(px, in + x * color, static_cast<size_t>(color));
    } else {
      const uint8_t* s = in + x * 4;
      const int nk = s[3];  // 255 - K
      const int r = nk - muldiv255(255 - s[0], nk);
      const int g = nk - muldiv255(255 - s[1], nk);
      const int b = nk - muldiv255(255 - s[2], nk);
      if (job->conversion == kCmykToRgb) {
        px[0] = static_cast<uint8_t>(r);
        px[1] = static_cast<uint8_t>(g);
        px[2] = static_cast<uint8_t>(b);
      } else {
        px[0] = static_cast<uint8_t>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
      }
    }
    if (job->add_alpha) px[c - 1] = 0xFF;
  }
  return out;
}

// Runs with setjmp: no objects with destructors here, all state lives in *job (owned by the caller).
int jpeg_decode_run(JpegDecodeJob* job) {
  jpeg_decompress_struct* cinfo = &job->cinfo;
  Target* t = job->target;
  cinfo->err = &job->err.pub;
  jpeg_install_errors(&job->err);
  if (setjmp(job->err.jump) != 0) return job->err.status;

  jpeg_create_decompress(cinfo);
  job->created = true;
  jpeg_mem_src(cinfo, job->data, static_cast<unsigned long>(job->size));
  jpeg_read_header(cinfo, TRUE);

  const bool cmyk = cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK;
  int channels = 0;
  switch (job->mode) {
    case kUnchanged:
      break;  // libjpeg's default output: gray, RGB, or CMYK for CMYK/YCCK files
    case kGray:
    case kGrayAlpha:
      if (cmyk) {
        cinfo->out_color_space = JCS_CMYK;
        job->conversion = kCmykToGray;
      } else {
        cinfo->out_color_space = JCS_GRAYSCALE;
      }
      channels = job->mode == kGray ? 1 : 2;
      break;
    case kRgb:
    case kRgbAlpha:
      if (cmyk) {
        cinfo->out_color_space = JCS_CMYK;
        job->conversion = kCmykToRgb;
      } else {
        cinfo->out_color_space = JCS_RGB;
      }
      channels = job->mode == kRgb ? 3 : 4;
      break;
    default:
      std::snprintf(job->err.message, kMessageSize, "unknown image read mode %d", job->mode);
      return kBadArgument;
  }
  job->add_alpha = job->mode == kGrayAlpha || job->mode == kRgbAlpha;
  jpeg_calc_output_dimensions(cinfo);
  const int components = cinfo->out_color_components;
  if (job->mode == kUnchanged) {
    channels = components;
    if (components != 1 && components != 3 && components != 4) {
      std::snprintf(job->err.message, kMessageSize, "JPEG: unsupported number of components %d", components);
      return kUnsupported;
    }
  }
  const int expected_components = job->conversion != kCopy ? 4 : (job->add_alpha ? channels - 1 : channels);
  if (components != expected_components) {
    std::snprintf(job->err.message, kMessageSize, "JPEG: unexpected output layout (%d components)", components);
    return kUnsupported;
  }
  int status = check_dimensions(cinfo->output_width, cinfo->output_height, channels, job->err.message);
  if (status != kOk) return status;
  t->height = cinfo->output_height;
  t->width = cinfo->output_width;
  t->channels = channels;
  if (t->dst == nullptr) return kOk;
  if (t->dst_size != t->height * t->width * channels) {
    std::snprintf(job->err.message, kMessageSize, "destination holds %lld bytes, the image needs %lld",
                  (long long)t->dst_size, (long long)(t->height * t->width * channels));
    return kBadArgument;
  }

  jpeg_start_decompress(cinfo);
  job->scan = static_cast<uint8_t*>(std::malloc(static_cast<size_t>(t->width) * components));
  job->row = static_cast<uint8_t*>(std::malloc(static_cast<size_t>(t->width) * channels));
  if (job->scan == nullptr || job->row == nullptr) {
    std::snprintf(job->err.message, kMessageSize, "out of memory decoding a %lldx%lld JPEG", (long long)t->width,
                  (long long)t->height);
    return kNoMemory;
  }
  while (cinfo->output_scanline < cinfo->output_height) {
    const int64_t y = cinfo->output_scanline;
    JSAMPROW rows[1] = {job->scan};
    if (jpeg_read_scanlines(cinfo, rows, 1) != 1) {
      std::snprintf(job->err.message, kMessageSize, "JPEG: decoder stopped at row %lld", (long long)y);
      return kCorrupt;
    }
    emit_row(t, y, jpeg_convert_row(job));
  }
  jpeg_finish_decompress(cinfo);
  return kOk;
}

int jpeg_decode(const uint8_t* data, size_t size, int mode, Target* target, char* message) {
  JpegDecodeJob job;
  std::memset(&job, 0, sizeof job);
  job.data = data;
  job.size = size;
  job.mode = mode;
  job.target = target;
  const int status = jpeg_decode_run(&job);
  if (job.created) jpeg_destroy_decompress(&job.cinfo);
  std::free(job.scan);
  std::free(job.row);
  if (status != kOk) std::memcpy(message, job.err.message, kMessageSize);
  return status;
}

// ---- JPEG: encoding -----------------------------------------------------------------------------------------

struct JpegEncodeJob {
  const uint8_t* pixels;
  int64_t height, width;
  int channels, planar, quality;
  jpeg_compress_struct cinfo;
  JpegError err;
  bool created;
  jpeg_destination_mgr dest;
  uint8_t* out;  // malloc'd, grows by doubling; handed to the caller on success
  size_t capacity;
  size_t size;
  uint8_t* row;
};

JpegEncodeJob* encode_job(j_compress_ptr cinfo) { return static_cast<JpegEncodeJob*>(cinfo->client_data); }

void jpeg_dest_init(j_compress_ptr cinfo) {
  JpegEncodeJob* job = encode_job(cinfo);
  job->capacity = 1 << 16;
  job->out = static_cast<uint8_t*>(std::malloc(job->capacity));
  if (job->out == nullptr) ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 0);
  job->dest.next_output_byte = job->out;
  job->dest.free_in_buffer = job->capacity;
}

boolean jpeg_dest_grow(j_compress_ptr cinfo) {
  // Called when the whole buffer is full.
  JpegEncodeJob* job = encode_job(cinfo);
  const size_t capacity = job->capacity * 2;
  auto* grown = static_cast<uint8_t*>(std::realloc(job->out, capacity));
  if (grown == nullptr) ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 1);
  job->out = grown;
  job->dest.next_output_byte = grown + job->capacity;
  job->dest.free_in_buffer = capacity - job->capacity;
  job->capacity = capacity;
  return TRUE;
}

void jpeg_dest_term(j_compress_ptr cinfo) {
  JpegEncodeJob* job = encode_job(cinfo);
  job->size = job->capacity - job->dest.free_in_buffer;
}

int jpeg_encode_run(JpegEncodeJob* job) {
  jpeg_compress_struct* cinfo = &job->cinfo;
  cinfo->err = &job->err.pub;
  jpeg_install_errors(&job->err);
  if (setjmp(job->err.jump) != 0) return job->err.status;

  jpeg_create_compress(cinfo);
  job->created = true;
  cinfo->client_data = job;
  job->dest.init_destination = jpeg_dest_init;
  job->dest.empty_output_buffer = jpeg_dest_grow;
  job->dest.term_destination = jpeg_dest_term;
  cinfo->dest = &job->dest;
  cinfo->image_width = static_cast<JDIMENSION>(job->width);
  cinfo->image_height = static_cast<JDIMENSION>(job->height);
  cinfo->input_components = job->channels;
  cinfo->in_color_space = job->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(cinfo);
  jpeg_set_quality(cinfo, job->quality, TRUE);
  jpeg_start_compress(cinfo, TRUE);
  while (cinfo->next_scanline < cinfo->image_height) {
    const uint8_t* src = source_row(job->pixels, job->height, job->width, job->channels, job->planar,
                                    cinfo->next_scanline, job->row);
    JSAMPROW rows[1] = {const_cast<JSAMPROW>(src)};
    jpeg_write_scanlines(cinfo, rows, 1);
  }
  jpeg_finish_compress(cinfo);
  return kOk;
}

// ---- PNG: errors ---------------------------------------------------------------------------------------------

struct PngError {
  jmp_buf jump;
  int status;
  char message[kMessageSize];
};

[[noreturn]] void png_on_error(png_structp png, png_const_charp text) {
  auto* err = static_cast<PngError*>(png_get_error_ptr(png));
  if (err->status == kOk) err->status = kCorrupt;
  std::snprintf(err->message, kMessageSize, "PNG: %s", text ? text : "unknown libpng error");
  std::longjmp(err->jump, 1);
}

void png_on_warning(png_structp, png_const_charp) {}

// ---- PNG: decoding -------------------------------------------------------------------------------------------

struct PngDecodeJob {
  const uint8_t* data;
  size_t size;
  size_t position;
  int mode;
  Target* target;
  png_structp png;
  png_infop info;
  uint8_t* image;  // whole HWC image, for interlaced files decoded to CHW
  uint8_t* row;    // one HWC row, for progressive files decoded to CHW
  PngError err;
};

void png_read_memory(png_structp png, png_bytep out, png_size_t count) {
  auto* job = static_cast<PngDecodeJob*>(png_get_io_ptr(png));
  if (count > job->size - job->position) {
    job->err.status = kTruncated;
    png_error(png, "premature end of PNG data (the file is truncated)");
  }
  std::memcpy(out, job->data + job->position, count);
  job->position += count;
}

int png_decode_run(PngDecodeJob* job) {
  Target* t = job->target;
  if (setjmp(job->err.jump) != 0) return job->err.status;

  job->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job->err, png_on_error, png_on_warning);
  if (job->png == nullptr) {
    std::snprintf(job->err.message, kMessageSize, "PNG: cannot create the libpng read structure");
    return kNoMemory;
  }
  job->info = png_create_info_struct(job->png);
  if (job->info == nullptr) {
    std::snprintf(job->err.message, kMessageSize, "PNG: cannot create the libpng info structure");
    return kNoMemory;
  }
  png_set_read_fn(job->png, job, png_read_memory);
  png_read_info(job->png, job->info);

  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0, interlace = 0;
  png_get_IHDR(job->png, job->info, &width, &height, &bit_depth, &color_type, &interlace, nullptr, nullptr);
  const bool has_trns = png_get_valid(job->png, job->info, PNG_INFO_tRNS) != 0;
  const bool want_alpha = job->mode == kGrayAlpha || job->mode == kRgbAlpha;

  if (bit_depth == 16) png_set_strip_16(job->png);  // keep the high byte
  bool color, alpha;
  if (color_type == PNG_COLOR_TYPE_PALETTE) {
    png_set_palette_to_rgb(job->png);  // also turns tRNS into alpha
    color = true;
    alpha = has_trns;
  } else {
    color = (color_type & PNG_COLOR_MASK_COLOR) != 0;
    alpha = (color_type & PNG_COLOR_MASK_ALPHA) != 0;
    if (!color && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(job->png);
    if (has_trns && want_alpha && !alpha) {
      png_set_tRNS_to_alpha(job->png);
      alpha = true;
    }
  }

  int channels = 0;
  switch (job->mode) {
    case kUnchanged:
      channels = (color ? 3 : 1) + (alpha ? 1 : 0);
      break;
    case kGray:
      if (color) png_set_rgb_to_gray(job->png, 1, 0.2989, 0.587);
      if (alpha) png_set_strip_alpha(job->png);
      channels = 1;
      break;
    case kGrayAlpha:
      if (color) png_set_rgb_to_gray(job->png, 1, 0.2989, 0.587);
      if (!alpha) png_set_add_alpha(job->png, 0xFF, PNG_FILLER_AFTER);
      channels = 2;
      break;
    case kRgb:
      if (!color) png_set_gray_to_rgb(job->png);
      if (alpha) png_set_strip_alpha(job->png);
      channels = 3;
      break;
    case kRgbAlpha:
      if (!color) png_set_gray_to_rgb(job->png);
      if (!alpha) png_set_add_alpha(job->png, 0xFF, PNG_FILLER_AFTER);
      channels = 4;
      break;
    default:
      std::snprintf(job->err.message, kMessageSize, "unknown image read mode %d", job->mode);
      return kBadArgument;
  }
  const int passes = png_set_interlace_handling(job->png);
  png_read_update_info(job->png, job->info);

  int status = check_dimensions(width, height, channels, job->err.message);
  if (status != kOk) return status;
  if (png_get_channels(job->png, job->info) != channels || png_get_bit_depth(job->png, job->info) != 8 ||
      png_get_rowbytes(job->png, job->info) != static_cast<size_t>(width) * channels) {
    std::snprintf(job->err.message, kMessageSize,
                  "PNG: unexpected decoded layout (%d channels of %d bits, colour type %d, bit depth %d)",
                  png_get_channels(job->png, job->info), png_get_bit_depth(job->png, job->info), color_type,
                  bit_depth);
    return kUnsupported;
  }
  t->height = height;
  t->width = width;
  t->channels = channels;
  if (t->dst == nullptr) return kOk;
  const int64_t stride = t->width * channels;
  if (t->dst_size != t->height * stride) {
    std::snprintf(job->err.message, kMessageSize, "destination holds %lld bytes, the image needs %lld",
                  (long long)t->dst_size, (long long)(t->height * stride));
    return kBadArgument;
  }

  const bool direct = !t->planar || channels == 1;
  if (passes > 1) {
    // Each pass refines rows already in the buffer, so interlaced images need the whole HWC image.
    uint8_t* base = t->dst;
    if (!direct) {
      job->image = static_cast<uint8_t*>(std::malloc(static_cast<size_t>(t->height * stride)));
      if (job->image == nullptr) {
        std::snprintf(job->err.message, kMessageSize, "out of memory decoding an interlaced PNG");
        return kNoMemory;
      }
      base = job->image;
    }
    for (int pass = 0; pass < passes; ++pass)
      for (int64_t y = 0; y < t->height; ++y) png_read_row(job->png, base + y * stride, nullptr);
    if (!direct)
      for (int64_t y = 0; y < t->height; ++y) emit_row(t, y, base + y * stride);
  } else if (direct) {
    for (int64_t y = 0; y < t->height; ++y) png_read_row(job->png, t->dst + y * stride, nullptr);
  } else {
    job->row = static_cast<uint8_t*>(std::malloc(static_cast<size_t>(stride)));
    if (job->row == nullptr) {
      std::snprintf(job->err.message, kMessageSize, "out of memory decoding a PNG");
      return kNoMemory;
    }
    for (int64_t y = 0; y < t->height; ++y) {
      png_read_row(job->png, job->row, nullptr);
      emit_row(t, y, job->row);
    }
  }
  // png_read_end is not called: all pixels are in, and a missing IEND chunk does not make them wrong.
  return kOk;
}

int png_decode(const uint8_t* data, size_t size, int mode, Target* target, char* message) {
  PngDecodeJob job;
  std::memset(&job, 0, sizeof job);
  job.data = data;
  job.size = size;
  job.mode = mode;
  job.target = target;
  const int status = png_decode_run(&job);
  if (job.png != nullptr) png_destroy_read_struct(&job.png, job.info ? &job.info : nullptr, nullptr);
  std::free(job.image);
  std::free(job.row);
  if (status != kOk) std::memcpy(message, job.err.message, kMessageSize);
  return status;
}

// ---- PNG: encoding -------------------------------------------------------------------------------------------

struct PngEncodeJob {
  const uint8_t* pixels;
  int64_t height, width;
  int channels, planar, level;
  png_structp png;
  png_infop info;
  uint8_t* out;  // malloc'd, grows by doubling; handed to the caller on success
  size_t capacity;
  size_t size;
  uint8_t* row;
  PngError err;
};

void png_write_memory(png_structp png, png_bytep data, png_size_t count) {
  auto* job = static_cast<PngEncodeJob*>(png_get_io_ptr(png));
  if (count > job->capacity - job->size) {
    size_t capacity = job->capacity ? job->capacity : 1 << 14;
    while (capacity - job->size < count) capacity *= 2;
    auto* grown = static_cast<uint8_t*>(std::realloc(job->out, capacity));
    if (grown == nullptr) {
      job->err.status = kNoMemory;
      png_error(png, "out of memory while encoding");
    }
    job->out = grown;
    job->capacity = capacity;
  }
  std::memcpy(job->out + job->size, data, count);
  job->size += count;
}

void png_flush_memory(png_structp) {}

int png_encode_run(PngEncodeJob* job) {
  if (setjmp(job->err.jump) != 0) return job->err.status;
  job->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &job->err, png_on_error, png_on_warning);
  if (job->png == nullptr) {
    std::snprintf(job->err.message, kMessageSize, "PNG: cannot create the libpng write structure");
    return kNoMemory;
  }
  job->info = png_create_info_struct(job->png);
  if (job->info == nullptr) {
    std::snprintf(job->err.message, kMessageSize, "PNG: cannot create the libpng info structure");
    return kNoMemory;
  }
  static const int kColorTypes[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                     PNG_COLOR_TYPE_RGB_ALPHA};
  png_set_write_fn(job->png, job, png_write_memory, png_flush_memory);
  png_set_compression_level(job->png, job->level);
  png_set_IHDR(job->png, job->info, static_cast<png_uint_32>(job->width), static_cast<png_uint_32>(job->height), 8,
               kColorTypes[job->channels], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(job->png, job->info);
  for (int64_t y = 0; y < job->height; ++y) {
    const uint8_t* src = source_row(job->pixels, job->height, job->width, job->channels, job->planar, y, job->row);
    png_write_row(job->png, const_cast<png_bytep>(src));
  }
  png_write_end(job->png, nullptr);
  return kOk;
}

// ---- ABI helpers ---------------------------------------------------------------------------------------------

int fail(int status, const char* message) {
  try {
    mr::set_last_error(message);
  } catch (...) {
  }
  return status;
}

int decode(const uint8_t* data, int64_t size, int mode, Target* target, int* format) {
  char message[kMessageSize];
  message[0] = '\0';
  if (format) *format = kFormatUnknown;
  if (data == nullptr || size <= 0) return fail(kCorrupt, "the image data is empty");
  if (mode < kUnchanged || mode > kRgbAlpha) {
    std::snprintf(message, kMessageSize, "unknown image read mode %d", mode);
    return fail(kBadArgument, message);
  }
  const auto n = static_cast<size_t>(size);
  int status;
  if (is_jpeg(data, n)) {
    if (format) *format = kFormatJpeg;
    status = jpeg_decode(data, n, mode, target, message);
  } else if (is_png(data, n)) {
    if (format) *format = kFormatPng;
    status = png_decode(data, n, mode, target, message);
  } else {
    return fail(kUnsupported, "unrecognised image format (neither JPEG nor PNG)");
  }
  return status == kOk ? kOk : fail(status, message);
}

// Validates an encoder's pixel arguments; returns kOk or a status with the error already recorded.
int check_pixels(const uint8_t* pixels, int64_t height, int64_t width, int channels, const char* what,
                 int max_channels) {
  char message[kMessageSize];
  if (pixels == nullptr || height <= 0 || width <= 0 || channels < 1 || channels > max_channels ||
      (max_channels == 3 && channels == 2)) {
    std::snprintf(message, kMessageSize, "%s: invalid image %lldx%lld with %d channels", what, (long long)width,
                  (long long)height, channels);
    return fail(kBadArgument, message);
  }
  const int64_t limit = std::strcmp(what, "JPEG") == 0 ? int64_t{JPEG_MAX_DIMENSION} : int64_t{PNG_USER_WIDTH_MAX};
  if (width > limit || height > limit) {
    std::snprintf(message, kMessageSize, "%s: %lldx%lld is larger than the encoder allows (%lld per side)", what,
                  (long long)width, (long long)height, (long long)limit);
    return fail(kTooLarge, message);
  }
  return kOk;
}

}  // namespace

// ---- exported ------------------------------------------------------------------------------------------------

// Reads only the header: the size of the image `mode` would produce, and the format (1 JPEG, 2 PNG).
MR_API int mr_image_probe(const uint8_t* data, int64_t size, int mode, int64_t* height, int64_t* width,
                          int* channels, int* format) {
  Target t{};
  const int status = decode(data, size, mode, &t, format);
  if (status == kOk) {
    *height = t.height;
    *width = t.width;
    *channels = t.channels;
  }
  return status;
}

// Decodes into a caller buffer of exactly height*width*channels bytes (as probed), HWC or CHW (`planar`).
MR_API int mr_image_decode_into(const uint8_t* data, int64_t size, int mode, uint8_t* dst, int64_t dst_size,
                                int planar) {
  if (dst == nullptr) return fail(kBadArgument, "destination buffer is null");
  Target t{};
  t.dst = dst;
  t.dst_size = dst_size;
  t.planar = planar;
  return decode(data, size, mode, &t, nullptr);
}

// Encodes uint8 pixels (HWC, or CHW when `planar`) with 1-4 channels as PNG; *out is malloc'd (mr_image_free).
MR_API int mr_image_encode_png(const uint8_t* pixels, int64_t height, int64_t width, int channels, int planar,
                               int compression_level, uint8_t** out, int64_t* out_size) {
  *out = nullptr;
  *out_size = 0;
  int status = check_pixels(pixels, height, width, channels, "PNG", 4);
  if (status != kOk) return status;
  if (compression_level < 0 || compression_level > 9)
    return fail(kBadArgument, "PNG: the compression level must be between 0 and 9");
  PngEncodeJob job;
  std::memset(&job, 0, sizeof job);
  job.pixels = pixels;
  job.height = height;
  job.width = width;
  job.channels = channels;
  job.planar = planar;
  job.level = compression_level;
  job.row = static_cast<uint8_t*>(std::malloc(static_cast<size_t>(width) * channels));
  if (job.row != nullptr) {
    status = png_encode_run(&job);
  } else {
    std::snprintf(job.err.message, kMessageSize, "PNG: out of memory");
    status = kNoMemory;
  }
  if (job.png != nullptr) png_destroy_write_struct(&job.png, job.info ? &job.info : nullptr);
  std::free(job.row);
  if (status != kOk) {
    std::free(job.out);
    return fail(status, job.err.message);
  }
  *out = job.out;
  *out_size = static_cast<int64_t>(job.size);
  return kOk;
}

// Encodes uint8 pixels (HWC, or CHW when `planar`) with 1 or 3 channels as baseline JPEG at `quality` (1-100).
MR_API int mr_image_encode_jpeg(const uint8_t* pixels, int64_t height, int64_t width, int channels, int planar,
                                int quality, uint8_t** out, int64_t* out_size) {
  *out = nullptr;
  *out_size = 0;
  int status = check_pixels(pixels, height, width, channels, "JPEG", 3);
  if (status != kOk) return status;
  if (quality < 1 || quality > 100) return fail(kBadArgument, "JPEG: the quality must be between 1 and 100");
  JpegEncodeJob job;
  std::memset(&job, 0, sizeof job);
  job.pixels = pixels;
  job.height = height;
  job.width = width;
  job.channels = channels;
  job.planar = planar;
  job.quality = quality;
  job.row = static_cast<uint8_t*>(std::malloc(static_cast<size_t>(width) * channels));
  if (job.row != nullptr) {
    status = jpeg_encode_run(&job);
  } else {
    std::snprintf(job.err.message, kMessageSize, "JPEG: out of memory");
    status = kNoMemory;
  }
  if (job.created) jpeg_destroy_compress(&job.cinfo);
  std::free(job.row);
  if (status != kOk) {
    std::free(job.out);
    return fail(status, job.err.message);
  }
  *out = job.out;
  *out_size = static_cast<int64_t>(job.size);
  return kOk;
}

// Frees a buffer returned by the encoders.
MR_API void mr_image_free(void* p) { std::free(p); }
